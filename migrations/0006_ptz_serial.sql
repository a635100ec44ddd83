-- PTZ heads wired to the box over RS-485 and driven with Pelco-D or Pelco-P,
-- bound to a channel: a GB28181 channel (device id, channel id) or an RTSP
-- source (device id 'source', channel id = the source's name).
CREATE TABLE ptz_serial (
    device_id  TEXT NOT NULL,
    channel_id TEXT NOT NULL,
    -- Serial device path, e.g. /dev/ttyUSB0 or /dev/ttyS1.
    port       TEXT NOT NULL,
    baud       INTEGER NOT NULL DEFAULT 2400 CHECK (baud BETWEEN 300 AND 921600),
    parity     TEXT NOT NULL DEFAULT 'none' CHECK (parity IN ('none', 'even', 'odd')),
    protocol   TEXT NOT NULL CHECK (protocol IN ('pelco_d', 'pelco_p')),
    -- The head's address as set on its DIP switches (1-255).
    address    INTEGER NOT NULL CHECK (address BETWEEN 1 AND 255),
    PRIMARY KEY (device_id, channel_id)
) STRICT;
