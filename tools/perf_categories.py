#!/usr/bin/env python3
"""Groups a flat `perf report` (self time by dso and symbol) into where-the-time-goes
categories for the gateway benchmark. Reads `perf report --stdio --no-children --sort
dso,symbol` output on stdin; prints each category's share, then the top symbols.

Usage: perf report -i perf.data --stdio --no-children --sort dso,symbol | tools/perf_categories.py
"""

import re
import sys

# First match wins; (category, dso regex, symbol regex).
RULES = [
    ("kernel: scheduler, wake-ups, futex", r"kernel", r"finish_task_switch|_raw_spin_unlock|schedule|futex|try_to_wake|ttwu|select_task|enqueue|dequeue|update_curr|pick_next|__switch_to|psi_|wake_up|native_queued"),
    ("kernel: TCP/loopback", r"kernel", r"tcp|skb|sock|inet|ip_|net_|napi|__dev_|loopback|nf_|sk_|epoll|ep_"),
    ("kernel: file writes (WAL, checkpoint)", r"kernel", r"ext4|folio|filemap|page|bio|mpage|jbd2|iomap|writeback|copy_.*iter|xas_|lruvec|dirty|generic_perform_write|pwrite|posix_lock|fdget|vfs_|file"),
    ("kernel: other (syscall entry, copies, timers)", r"kernel", r"."),
    ("SQLite: parsing and preparing statements", r"llm-local", r"^(sqlite3RunParser|yy_|sqlite3GetToken|keywordCode|sqlite3Prepare|sqlite3LocateTable|sqlite3Insert|sqlite3Update|sqlite3Generate|sqlite3Expr|resolve|sqlite3Resolve|sqlite3Select|sqlite3Where|whereLoop|exprAnalyze|sqlite3Vdbe(Add|Make|Change|Resolve|Finalize|Delete|Clear)|sqlite3Finish|sqlite3Src|sqlite3Index|sqlite3Column(Index|sFrom)|tokenExpr|sqlite3Parser|sqlite3_prepare|sqlite3LockAndPrepare|sqlite3CodeVerify|sqlite3ExprCode|sqlite3Upsert|sqlite3Affinity|sqlite3Table|codeAllEqualityTerms|sqlite3Compile|sqlite3PExpr|sqlite3ExprList|sqlite3NameFrom|sqlite3CreateColumnExpr|wherePath|whereShortCut|sqlite3Fix|sqlite3AuthCheck|sqlite3DbStrNDup|sqlite3ExprDelete|sqlite3ExprListDelete|sqlite3SrcListDelete|sqlite3DeleteTable|sqlite3SelectDelete)"),
    ("SQLite: executing, B-tree, pager, WAL", r"llm-local", r"^(sqlite3|wal|pager|btree|pcache|vdbe|unix|memjrnl|moveTo|balance|insertCell|fillInCell|releaseMem|getAndInit|accessPayload|findCell|freeSpace|allocateSpace|dropCell|computeCellSize|cellSize|btreeParse|pageFindSlot|saveCursor|clearCell|setChildPtrmaps|rehash|mem[0-9A-Z]|decodeFlags|zeroPage|walIndex|sqlite3_)"),
    ("allocation and copies (malloc, free, memmove)", r"libc|llm-local", r"malloc|free|memmove|memcpy|memset|_int_|realloc|calloc|tcache|cfree|mremap|sbrk|brk|__rust_alloc|__rust_dealloc|__rust_realloc|alloc::raw_vec|dealloc"),
    ("libc: locks, syscalls, other", r"libc|vdso|ld-linux|libm", r"."),
    ("tokio: scheduler, tasks, channels, timers", r"llm-local", r"tokio::|tokio_util|mio::|parking_lot|crossbeam"),
    ("HTTP: hyper, axum, tower, reqwest, http", r"llm-local", r"hyper|axum|tower|reqwest|http::|httparse|h2::|matchit|http_body"),
    ("JSON: serde_json, serde", r"llm-local", r"serde|ryu|itoa"),
    ("gateway code (shared::, llm_local::)", r"llm-local", r"shared::|llm_local::"),
    ("hashing, uuid, getrandom, sha2", r"llm-local", r"sha2|Sha256|uuid|getrandom|hash|Hash|siphash|foldhash|hashbrown"),
    ("other in llm-local (std, core, chrono, tracing...)", r"llm-local", r"."),
    ("other", r".", r"."),
]


def main():
    rows = []
    for line in sys.stdin:
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*?)\s*(?:-\s+-\s*)?$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(3)))
    cats = {}
    for pct, dso, sym in rows:
        for name, dso_re, sym_re in RULES:
            if re.search(dso_re, dso) and re.search(sym_re, sym):
                cats[name] = cats.get(name, 0.0) + pct
                break
    total = sum(p for p, _, _ in rows)
    for name, pct in sorted(cats.items(), key=lambda kv: -kv[1]):
        print(f"{pct:6.1f}%  {name}")
    print(f"{total:6.1f}%  (total of the samples listed)")
    print()
    print("top symbols:")
    for pct, dso, sym in rows[:25]:
        print(f"{pct:6.2f}%  {dso:18} {sym[:110]}")


if __name__ == "__main__":
    main()
