#!/usr/bin/env python3
"""Generates a large stack: N services using anchors, merge keys,
interpolation with defaults, an .env file and an override file."""
import os
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
out = sys.argv[2] if len(sys.argv) > 2 else "bench-stack"
os.makedirs(out, exist_ok=True)

with open(os.path.join(out, ".env"), "w") as f:
    f.write("REGISTRY=registry.local:5000\nTAG=1.2.3\nLOG_LEVEL=info\n")

lines = [
    "version: '3.8'",
    "x-common: &common",
    "  restart: unless-stopped",
    "  environment: &env",
    "    LOG_LEVEL: ${LOG_LEVEL:-debug}",
    "    REGION: ${REGION:-eu-west-1}",
    "  labels:",
    "    com.example.tier: backend",
    "  logging:",
    "    driver: json-file",
    "    options:",
    "      max-size: 10m",
    "services:",
]
for i in range(n):
    dep = f"\n    depends_on: [svc{i - 1}]" if i % 10 else ""
    lines.append(
        f"""  svc{i}:
    <<: *common
    image: ${{REGISTRY}}/svc{i}:${{TAG:-latest}}
    command: ["serve", "--port", "{8000 + i}"]
    ports:
      - "{20000 + i}:{8000 + i}"
    volumes:
      - ./data/svc{i}:/data:ro
      - cache{i % 20}:/cache
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://localhost:{8000 + i}/health"]
      interval: 10s
      retries: 3{dep}"""
    )
lines.append("volumes:")
for j in range(20):
    lines.append(f"  cache{j}: {{}}")
with open(os.path.join(out, "docker-compose.yml"), "w") as f:
    f.write("\n".join(lines) + "\n")

with open(os.path.join(out, "docker-compose.override.yml"), "w") as f:
    f.write("version: '3.8'\nservices:\n")
    for i in range(0, n, 3):
        f.write(f"  svc{i}:\n    environment:\n      OVERRIDDEN: \"yes\"\n    ports:\n      - \"{40000 + i}:9{i % 1000:03d}\"\n")
