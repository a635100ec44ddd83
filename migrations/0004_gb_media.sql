-- GB28181 live media options: how each channel's media comes in, and whether
-- a device's RTP must carry the SSRC it answered.
ALTER TABLE gb_channels ADD COLUMN media_transport TEXT NOT NULL DEFAULT 'udp'
    CHECK (media_transport IN ('udp', 'tcp_passive', 'tcp_active'));
ALTER TABLE gb_devices ADD COLUMN ssrc_check INTEGER NOT NULL DEFAULT 1 CHECK (ssrc_check IN (0, 1));
