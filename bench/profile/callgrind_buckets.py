#!/usr/bin/env python3
"""callgrind_buckets.py CALLGRIND_OUT REQUESTS

preforkd's user-space instructions per request from one worker's callgrind profile
(bench/profile/callgrind_one_worker.sh), by inclusive cost of the functions that
stand for each part of a keep-alive request. The parts overlap only where said."""

import os
import re
import subprocess
import sys


def main():
    path, requests = sys.argv[1], int(sys.argv[2])
    # From /: callgrind_annotate merges a function's costs under one file name only
    # when it does not have to resolve source paths relative to the working directory.
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", "--inclusive=yes",
                          os.path.abspath(path)], capture_output=True, text=True, cwd="/").stdout
    inclusive = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([\s\d.]+%\)\s+(.*)", line)
        if m:
            inclusive[m.group(2)] = max(inclusive.get(m.group(2), 0), int(m.group(1).replace(",", "")))

    def get(pattern):
        return max([v for k, v in inclusive.items() if re.search(pattern, k) and "[" in k] or [0])

    total = next(v for k, v in inclusive.items() if "PROGRAM TOTALS" in k)
    on_read = get(r"StreamConnection::on_read\(.*\) \[")
    on_write = get(r"StreamConnection::on_write\(uv_write_s\*, int\) \[")
    rows = [("http_parser_execute, with the session's parser callbacks", get(r"\?\?\?:http_parser_execute ")),
            ("StreamConnection::set_timeout, all calls (timers)", get(r"StreamConnection::set_timeout\(unsigned long\) \[")),
            ("FileCache::lookup (hash, compare, coarse clock, shared_ptr copy)", get(r"FileCache::lookup\(.*\) \[")),
            ("HttpSession::status_head (status line, Server, Date)", get(r"HttpSession::status_head\(int, bool\) const \[")),
            ("StreamConnection::write_shared (WriteRequest, uv_write, writev)", get(r"StreamConnection::write_shared\(.*\) \[")),
            ("StreamConnection::on_write (completion: frees, on_writes_done)", on_write),
            ("HttpSession::log_access", get(r"HttpSession::log_access\(.*\) \[")),
            ("HttpSession::respond (lookup + status_head + write_shared + log + rest)", get(r"HttpSession::respond\(\) \[")),
            ("StreamConnection::on_read (everything a request costs above libuv's read)", on_read),
            ("libuv outside on_read and on_write (uv__io_poll, uv__read, pending queue, timers)", total - on_read - on_write)]
    print(f"{total:,} instructions over {requests:,} requests: {total / requests:,.0f} per request")
    for name, value in rows:
        if value:
            print(f"  {value / requests:7,.0f}  {name}")


if __name__ == "__main__":
    main()
