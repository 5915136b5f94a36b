"""docker-py against stack's Docker API socket (DOCKER_HOST): containers,
logs, exec, wait, networks, volumes and images. Exits non-zero, saying
what differed, at the first thing that does not work as on Docker."""

import sys
import time

import docker

IMAGE = sys.argv[1]


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


client = docker.from_env()
check("ping", client.ping(), True)
check("version", "ApiVersion" in client.version(), True)

# run in the foreground: the output comes back.
out = client.containers.run(IMAGE, ["sh", "-c", "echo hi; echo err >&2"], remove=True)
check("run output", out, b"hi\n")

c = client.containers.run(
    IMAGE, ["sh", "-c", "echo started; sleep 100"], detach=True, name="py-detached",
    labels={"suite": "dockerpy"}, environment={"GREETING": "hello"},
)
c.reload()
check("status", c.status, "running")
check("name", c.name, "py-detached")
check("labels", c.labels.get("suite"), "dockerpy")

for _ in range(100):
    if b"started" in c.logs():
        break
    time.sleep(0.05)
check("logs", c.logs(), b"started\n")

r = c.exec_run(["sh", "-c", "echo $GREETING; exit 4"])
check("exec output", r.output, b"hello\n")
check("exec exit code", r.exit_code, 4)

# A detached exec runs on its own; its inspection says when it ended and how.
ex = client.api.exec_create(c.id, ["sh", "-c", "sleep 0.5; exit 5"])
client.api.exec_start(ex["Id"], detach=True)
check("detached exec running", client.api.exec_inspect(ex["Id"])["Running"], True)
for _ in range(100):
    if not client.api.exec_inspect(ex["Id"])["Running"]:
        break
    time.sleep(0.05)
check("detached exec exit code", client.api.exec_inspect(ex["Id"])["ExitCode"], 5)

listed = client.containers.list(filters={"label": "suite=dockerpy"})
check("list by label", [x.name for x in listed], ["py-detached"])
check("list by other label", client.containers.list(filters={"label": "suite=none"}), [])

c.stop(timeout=1)
check("wait", c.wait()["StatusCode"] in (137, 143), True)
c.reload()
check("status after stop", c.status, "exited")
c.remove()
try:
    client.containers.get("py-detached")
    sys.exit("removed container still found")
except docker.errors.NotFound:
    pass

# networks: two containers reach each other by name.
net = client.networks.create("py-net", labels={"suite": "dockerpy"})
check("network listed", [n.name for n in client.networks.list(names=["py-net"])], ["py-net"])
server = client.containers.run(
    IMAGE, ["httpd", "-f", "-p", "80", "-h", "/www"], detach=True, name="py-web", network="py-net"
)
got = client.containers.run(
    IMAGE, ["wget", "-qO-", "http://py-web/"], network="py-net", remove=True
)
check("by name on the network", got, b"hello from web\n")
server.remove(force=True)
net.reload()
net.remove()

# volumes: what one container writes, the next one reads.
vol = client.volumes.create("py-vol", labels={"suite": "dockerpy"})
check("volume listed", [v.name for v in client.volumes.list(filters={"label": "suite=dockerpy"})], ["py-vol"])
client.containers.run(IMAGE, ["sh", "-c", "echo kept > /data/f"], volumes={"py-vol": {"bind": "/data", "mode": "rw"}}, remove=True)
got = client.containers.run(IMAGE, ["cat", "/data/f"], volumes=["py-vol:/data:ro"], remove=True)
check("volume contents", got, b"kept\n")
vol.remove()
check("volume gone", [v.name for v in client.volumes.list() if v.name == "py-vol"], [])

# images: get, tag, remove the tag.
img = client.images.get(IMAGE)
img.tag("py/tagged", "v1")
check("tagged", "py/tagged:v1" in client.images.get("py/tagged:v1").tags, True)
client.images.remove("py/tagged:v1")
try:
    client.images.get("py/tagged:v1")
    sys.exit("removed tag still found")
except docker.errors.ImageNotFound:
    pass

print("docker-py: all checks passed")
