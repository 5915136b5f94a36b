"""testcontainers-python against stack's Docker API (its reaper off): a
container with a published port, read back as testcontainers reads it."""

import sys
import urllib.request

from testcontainers.core.container import DockerContainer

IMAGE = sys.argv[1]

with DockerContainer(IMAGE).with_command("httpd -f -p 80 -h /www").with_exposed_ports(80) as c:
    host = c.get_container_host_ip()
    port = c.get_exposed_port(80)
    body = None
    for _ in range(100):
        try:
            body = urllib.request.urlopen(f"http://{host}:{port}/", timeout=2).read()
            break
        except OSError:
            import time
            time.sleep(0.05)
    if body != b"hello from web\n":
        sys.exit(f"testcontainers: got {body!r} from {host}:{port}")
print(f"testcontainers: served on {host}:{port}")
