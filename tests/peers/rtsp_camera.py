#!/usr/bin/python3
"""Fake RTSP security camera for camgate integration tests.

Built on GStreamer's gst-rtsp-server via PyGObject. Must be run with
Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0).

Mounts (all live test sources, 640x360 @ 25 fps, keyframe every 50 frames):
  /h264      H.264 (pt 96)  + G.711 A-law 8 kHz mono (pt 8)
  /h264aac   H.264 (pt 96)  + AAC mono (pt 97, rtpmp4gpay)
  /h265      H.265 Main (pt 96) + G.711 mu-law 8 kHz mono (pt 0)
  /h264only  H.264 (pt 96) only

Event lines printed on stdout (one per line, flushed immediately):
  READY port=<port>
  CLIENT_CONNECTED <id>
  CLIENT_CLOSED <id>
  SESSIONS <n>
  PLAY <path>
  TEARDOWN <path>
"""

import argparse
import signal
import sys
import threading

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer
except (ImportError, ValueError) as exc:  # pragma: no cover - environment problem
    sys.stderr.write(
        "rtsp_camera: cannot load GStreamer GObject bindings (%s); "
        "run with /usr/bin/python3 and install python3-gi, "
        "gir1.2-gst-rtsp-server-1.0\n" % exc
    )
    sys.exit(2)

WIDTH = 640
HEIGHT = 360
FPS = 25
GOP = 50


_emit_lock = threading.Lock()


def emit(line):
    """Print one event line and flush; never die because stdout went away.

    gst-rtsp-server may emit client signals from its own threads, hence the lock.
    """
    with _emit_lock:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            pass


def die(msg, code=1):
    sys.stderr.write("rtsp_camera: error: %s\n" % msg)
    sys.stderr.flush()
    sys.exit(code)


# --------------------------------------------------------------------------
# Pipeline descriptions
# --------------------------------------------------------------------------


def video_src(fmt):
    return (
        "videotestsrc is-live=true pattern=ball "
        "! video/x-raw,width=%d,height=%d,framerate=%d/1 "
        "! videoconvert "
        "! video/x-raw,format=%s,width=%d,height=%d,framerate=%d/1 "
        % (WIDTH, HEIGHT, FPS, fmt, WIDTH, HEIGHT, FPS)
    )


def h264_branch():
    return (
        video_src("I420")
        + "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=%d "
        "bitrate=1000 "
        "! video/x-h264,profile=constrained-baseline "
        "! rtph264pay name=pay0 pt=96 config-interval=1 " % GOP
    )


def h265_branch():
    # format=I420 on the raw caps keeps x265 at Main profile (not RExt).
    return (
        video_src("I420")
        + "! x265enc tune=zerolatency speed-preset=ultrafast key-int-max=%d "
        "bitrate=1000 option-string=\"repeat-headers=1\" "
        "! video/x-h265,profile=main "
        "! rtph265pay name=pay0 pt=96 config-interval=1 " % GOP
    )


def audio_src(rate):
    return (
        "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 "
        "! audioconvert ! audioresample "
        "! audio/x-raw,rate=%d,channels=1 " % rate
    )


def alaw_branch(name):
    return audio_src(8000) + "! alawenc ! rtppcmapay name=%s pt=8 " % name


def mulaw_branch(name):
    return audio_src(8000) + "! mulawenc ! rtppcmupay name=%s pt=0 " % name


def aac_branch(name, encoder, rate):
    return (
        audio_src(rate)
        + "! audioconvert ! %s bitrate=32000 ! aacparse "
        "! rtpmp4gpay name=%s pt=97 " % (encoder, name)
    )


def pick_aac_encoder():
    for enc in ("avenc_aac", "voaacenc", "fdkaacenc"):
        if Gst.ElementFactory.find(enc) is not None:
            return enc
    return None


COMMON_ELEMENTS = [
    "videotestsrc",
    "videoconvert",
    "capsfilter",
    "audiotestsrc",
    "audioconvert",
    "audioresample",
]


def mounts(aac_encoder, aac_rate):
    """Return {path: (launch_description, [required elements])}."""
    return {
        "/h264": (
            h264_branch() + alaw_branch("pay1"),
            ["x264enc", "rtph264pay", "alawenc", "rtppcmapay"],
        ),
        "/h264aac": (
            h264_branch() + aac_branch("pay1", aac_encoder or "avenc_aac", aac_rate),
            ["x264enc", "rtph264pay", aac_encoder or "avenc_aac|voaacenc",
             "aacparse", "rtpmp4gpay"],
        ),
        "/h265": (
            h265_branch() + mulaw_branch("pay1"),
            ["x265enc", "rtph265pay", "mulawenc", "rtppcmupay"],
        ),
        "/h264only": (
            h264_branch(),
            ["x264enc", "rtph264pay"],
        ),
    }


def check_elements(table):
    missing = []
    needed = set(COMMON_ELEMENTS)
    for _path, (_desc, elems) in table.items():
        needed.update(elems)
    for name in sorted(needed):
        if Gst.ElementFactory.find(name) is None:
            missing.append(name)
    if missing:
        die(
            "missing GStreamer element(s): %s (install gstreamer1.0-plugins-"
            "good/bad/ugly/libav)" % ", ".join(missing)
        )
    # Make sure every description actually parses/links.
    for path, (desc, _elems) in table.items():
        try:
            pipe = Gst.parse_launch(desc)
        except GLib.Error as exc:
            die("pipeline for %s does not parse: %s\n  %s" % (path, exc.message, desc))
        pipe.set_state(Gst.State.NULL)


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------


def context_path(ctx):
    """Best-effort request path of an RTSPContext."""
    path = None
    try:
        uri = ctx.uri
        if uri is not None:
            path = uri.abspath
    except Exception:  # noqa: BLE001 - bindings differ between versions
        path = None
    if not path:
        try:
            res, _method, uri_str, _ver = ctx.request.parse_request()
            if res == GstRtsp.RTSPResult.OK and uri_str:
                res2, url = GstRtsp.RTSPUrl.parse(uri_str)
                if res2 == GstRtsp.RTSPResult.OK and url is not None:
                    path = url.abspath
        except Exception:  # noqa: BLE001
            path = None
    if not path:
        return "?"
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    return path


def set_auth_methods(auth, mask):
    """gst_rtsp_auth_set_supported_methods(auth, BASIC|DIGEST).

    GstRTSPAuthMethod is introspected as an enum, not flags, so PyGObject
    refuses the OR-ed value 3. Fall back to calling the C function directly.
    """
    try:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod(mask))
        return
    except (TypeError, ValueError):
        pass
    import ctypes

    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype = ctypes.c_void_p
    get_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
    ptr = get_ptr(auth.__gpointer__, None)
    lib = ctypes.CDLL("libgstrtspserver-1.0.so.0")
    lib.gst_rtsp_auth_set_supported_methods.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.gst_rtsp_auth_set_supported_methods.restype = None
    lib.gst_rtsp_auth_set_supported_methods(ptr, mask)


class Camera:
    def __init__(self, args):
        self.args = args
        self.next_client_id = 1
        self.clients = {}  # id -> client (keep refs alive)
        self.client_sessions = {}  # id -> [RTSPSession] created by that client
        self.lock = threading.Lock()
        self.last_sessions = None

        self.server = GstRtspServer.RTSPServer()
        self.server.set_address(args.bind)
        self.server.set_service(str(args.port))

        aac_encoder = pick_aac_encoder()
        table = mounts(aac_encoder, args.aac_rate)
        check_elements(table)
        self.aac_encoder = aac_encoder

        if args.user is not None:
            self.setup_auth(args.user, args.password)

        mount_points = self.server.get_mount_points()
        for path, (desc, _elems) in table.items():
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch("( " + desc + ")")
            factory.set_shared(True)
            factory.set_protocols(
                GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP
            )
            if args.user is not None:
                role = Gst.Structure.new_from_string(
                    "user, media.factory.access=(boolean)true, "
                    "media.factory.construct=(boolean)true"
                )
                factory.add_role_from_structure(role)
            factory.connect("media-configure", self.on_media_configure)
            mount_points.add_factory(path, factory)

        self.server.connect("client-connected", self.on_client_connected)

    def setup_auth(self, user, password):
        auth = GstRtspServer.RTSPAuth()
        # (writable_structure().set_value() acts on a copy under PyGObject,
        # so use set_string.)
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        auth.add_digest(user, password, token)
        set_auth_methods(
            auth, int(GstRtsp.RTSPAuthMethod.BASIC) | int(GstRtsp.RTSPAuthMethod.DIGEST)
        )
        self.server.set_auth(auth)

    # -- signals -----------------------------------------------------------

    def on_media_configure(self, _factory, media):
        # videotestsrc/audiotestsrc answer the SEEKING query with "seekable"
        # even when live. gst-rtsp-server then honours the "Range: npt=0-"
        # that clients such as FFmpeg put in PLAY with a flushing seek on the
        # *shared* pipeline, which restarts timestamps (and forces a
        # keyframe) for every client already watching. A real camera does not
        # do that, so report the stream as not seekable: the PLAY still
        # succeeds, the seek is just skipped.
        bin_ = media.get_element()
        i = 0
        while True:
            pay = bin_.get_by_name("pay%d" % i)
            if pay is None:
                break
            pay.get_static_pad("src").add_probe(
                Gst.PadProbeType.QUERY_UPSTREAM, self._not_seekable_probe
            )
            i += 1

    @staticmethod
    def _not_seekable_probe(_pad, info):
        query = info.get_query()
        if query is not None and query.type == Gst.QueryType.SEEKING:
            # A fresh SEEKING query already says seekable=FALSE; answering it
            # here (HANDLED) keeps it from reaching the seekable test sources.
            return Gst.PadProbeReturn.HANDLED
        return Gst.PadProbeReturn.OK

    def on_client_connected(self, _server, client):
        with self.lock:
            cid = self.next_client_id
            self.next_client_id += 1
            self.clients[cid] = client
            self.client_sessions[cid] = []
        emit("CLIENT_CONNECTED %d" % cid)
        client.connect("closed", self.on_client_closed, cid)
        client.connect("play-request", self.on_play, cid)
        client.connect("teardown-request", self.on_teardown, cid)
        client.connect("new-session", self.on_new_session, cid)

    def on_client_closed(self, _client, cid):
        emit("CLIENT_CLOSED %d" % cid)
        # gst-rtsp-server detaches a closed client's TCP-interleaved media (and,
        # with stop-on-disconnect, its UDP media too) from the session but
        # leaves the now-empty session in the pool until it times out (session
        # timeout + 5 s slack, i.e. ~65 s by default). Reap those empty
        # sessions promptly so "SESSIONS 0" shows up right after a client drops
        # its connection without TEARDOWN. Done from the main loop, after the
        # server has finished its own close handling.
        GLib.timeout_add(100, self._reap_client, cid, 3)

    def _reap_client(self, cid, tries_left):
        with self.lock:
            sessions = list(self.client_sessions.get(cid, []))
        pool = self.server.get_session_pool()
        pending = []
        for sess in sessions:
            try:
                n_media = len(sess.filter(None, None) or [])
            except Exception:  # noqa: BLE001
                n_media = 0
            if n_media == 0:
                pool.remove(sess)
            else:
                pending.append(sess)
        if pending and tries_left > 1:
            with self.lock:
                self.client_sessions[cid] = pending
            GLib.timeout_add(500, self._reap_client, cid, tries_left - 1)
        else:
            # Sessions still holding media (UDP with stop-on-disconnect off)
            # are left to the normal timeout handled by pool.cleanup().
            with self.lock:
                self.client_sessions.pop(cid, None)
                self.clients.pop(cid, None)
        return GLib.SOURCE_REMOVE

    def on_play(self, _client, ctx, _cid):
        emit("PLAY %s" % context_path(ctx))

    def on_teardown(self, _client, ctx, _cid):
        emit("TEARDOWN %s" % context_path(ctx))

    def on_new_session(self, _client, session, cid):
        if self.args.session_timeout is not None:
            session.set_timeout(self.args.session_timeout)
        with self.lock:
            self.client_sessions.setdefault(cid, []).append(session)

    # -- timers ------------------------------------------------------------

    def poll_sessions(self):
        n = self.server.get_session_pool().get_n_sessions()
        if n != self.last_sessions:
            self.last_sessions = n
            emit("SESSIONS %d" % n)
        return GLib.SOURCE_CONTINUE

    def cleanup_sessions(self):
        self.server.get_session_pool().cleanup()
        return GLib.SOURCE_CONTINUE

    # -- run ---------------------------------------------------------------

    def run(self):
        loop = GLib.MainLoop()
        try:
            source_id = self.server.attach(None)
        except GLib.Error as exc:
            die("cannot listen on %s:%s: %s" % (self.args.bind, self.args.port, exc.message))
        if not source_id:
            die("cannot listen on %s:%s (port in use?)" % (self.args.bind, self.args.port))

        def on_signal(*_a):
            loop.quit()
            return GLib.SOURCE_REMOVE

        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, on_signal)
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, on_signal)

        self.poll_sessions()  # prints "SESSIONS 0"
        GLib.timeout_add(100, self.poll_sessions)
        GLib.timeout_add(1000, self.cleanup_sessions)

        emit("READY port=%d" % self.server.get_bound_port())
        loop.run()

        # Orderly shutdown: stop listening; the process exits right after.
        GLib.source_remove(source_id)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Fake RTSP camera (gst-rtsp-server)")
    p.add_argument(
        "--port", type=int, default=8554,
        help="TCP port (default 8554; 0 = any free port, see READY line)",
    )
    p.add_argument("--bind", default="127.0.0.1", help="address (default 127.0.0.1)")
    p.add_argument("--user", default=None, help="require auth with this user")
    p.add_argument("--password", default=None, help="password for --user")
    p.add_argument(
        "--aac-rate",
        type=int,
        default=16000,
        help="sample rate of the AAC audio on /h264aac (default 16000)",
    )
    p.add_argument(
        "--session-timeout",
        type=int,
        default=None,
        help="RTSP session timeout in seconds (default: gst-rtsp-server's 60)",
    )
    args = p.parse_args(argv)
    if (args.user is None) != (args.password is None):
        p.error("--user and --password must be given together")
    if not (0 <= args.port <= 65535):
        p.error("--port must be 0..65535 (0 = pick a free port)")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    Gst.init(None)
    cam = Camera(args)
    cam.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
