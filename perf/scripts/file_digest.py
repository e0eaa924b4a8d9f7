"""perf entry script (ray_bench files workload): read each file, return name, size, CRC-32."""

import os
import zlib


def run(mini_batch):
    rows = []
    for path in mini_batch:
        with open(path, "rb") as f:
            data = f.read()
        rows.append(f"{os.path.basename(path)} {len(data)} {zlib.crc32(data):08x}")
    return rows
