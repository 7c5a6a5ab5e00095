"""A real RTSP camera on loopback for the live tests: Debian's GStreamer RTSP server serving an H.264 MP4 (the
sample clip) at its own pace, as a camera sends it.

Run with Debian's Python (the project's Python has no `gi`):
    /usr/bin/python3 tests/rtsp_server.py VIDEO.mp4 PORT        -> rtsp://127.0.0.1:PORT/cam
    ... VIDEO.mp4 PORT sub=SMALL.mp4                            -> also rtsp://127.0.0.1:PORT/sub (a substream)
Prints "ready" once it listens. Needs gir1.2-gst-rtsp-server-1.0, python3-gi and GStreamer's good and bad
plugins (qtdemux, rtph264pay; h264parse); `.ci/run` installs them.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def main() -> None:
    video, port = sys.argv[1], sys.argv[2]
    mounts = {"cam": video, **dict(arg.split("=", 1) for arg in sys.argv[3:])}
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    for mount, path in mounts.items():
        factory = GstRtspServer.RTSPMediaFactory()
        # no re-encoding: the file's own H.264, paced in real time by the server's clock
        factory.set_launch(
            f'( filesrc location="{path}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'
        )
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
        factory.set_shared(True)  # like a camera: every client sees the same live stream
        server.get_mount_points().add_factory(f"/{mount}", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
