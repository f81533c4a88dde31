#!/usr/bin/env python3
"""Instructions per request of the firmware agent on QEMU's boards, and
where they go.

Runs the benchmark image (`src/bin/bench.rs`: the agent's monitor on
replayed input, two rounds of N and 3N pipelined `query-status`) under
`qemu-system-arm -icount shift=0`, where it measures itself (virtual time
is the instruction count) and prints `instructions per request`. With
`--breakdown`, a second run with TCG's execution log (`-d
in_asm,exec,nochain`: every translated block once with its instructions,
every executed block once per execution) attributes the difference of
the two rounds to the functions of the image's symbol table (`nm`).

usage: icount.py BOARD ELF [--breakdown]   (BOARD: mps2-an386 or microbit)
"""
import bisect, collections, os, re, subprocess, sys, tempfile

def qemu(board, elf, extra=()):
    return subprocess.run(
        ["qemu-system-arm", "-M", board, "-nographic", "-monitor", "none",
         "-serial", "null", "-icount", "shift=0",
         "-semihosting-config", "enable=on,target=native", *extra, "-kernel", elf],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)

def symbols(elf):
    out = subprocess.run(["nm", "-C", "--defined-only", "-n", elf],
                         capture_output=True, text=True, check=True).stdout
    addrs, names = [], []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tTW" and not parts[2].startswith("$"):
            addrs.append(int(parts[0], 16) & ~1)
            names.append(parts[2])
    return addrs, names

def breakdown(board, elf):
    """Per function: (round 2 - round 1) instructions."""
    addrs, names = symbols(elf)
    start = {a for a, n in zip(addrs, names) if n.endswith("bench::mark")}
    assert len(start) == 1, start
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "exec.log")
        qemu(board, elf, ["-d", "in_asm,exec,nochain", "-D", log])
        sizes, rounds, cur, done = {}, [], None, False
        tb = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
        insn = re.compile(r"^0x([0-9a-f]{8}):")
        fn_of = {}
        with open(log, errors="replace") as f:
            for line in f:
                m = tb.match(line)
                if m:
                    pc = int(m.group(1), 16)
                    if pc in start:
                        # The third mark ends the second round (what runs
                        # after it, the report, is no part of a round).
                        if len(rounds) == 2:
                            done = True
                        else:
                            rounds.append(collections.Counter())
                    if rounds and not done:
                        fn = fn_of.get(pc)
                        if fn is None:
                            i = bisect.bisect_right(addrs, pc) - 1
                            fn = fn_of[pc] = names[i] if i >= 0 else "?"
                        rounds[-1][fn] += sizes.get(pc, 1)
                    continue
                if line.startswith("IN:"):
                    cur = None
                    continue
                m = insn.match(line)
                if m:
                    pc = int(m.group(1), 16)
                    if cur is None:
                        cur = pc
                        sizes[cur] = 0
                    sizes[cur] += 1
                elif line.strip() == "":
                    cur = None
    assert len(rounds) == 2, len(rounds)
    diff = collections.Counter()
    for k in set(rounds[0]) | set(rounds[1]):
        diff[short(k)] += rounds[1][k] - rounds[0][k]
    return diff

def short(name):
    for _ in range(3):
        name = re.sub(r"<[^<>]*>", "", name)
    return name[:72]

def main():
    board, elf = sys.argv[1], sys.argv[2]
    out = qemu(board, elf)
    sys.stdout.write(out.stdout)
    m = re.search(r"instructions per request: (\d+)", out.stdout)
    if out.returncode != 0 or not m:
        sys.exit(f"benchmark failed: {out.stderr}")
    if "--breakdown" in sys.argv:
        per = int(m.group(1))
        diff = breakdown(board, elf)
        n = sum(diff.values()) / per  # 2N requests
        print("per request, by function (from the execution log):")
        for name, v in diff.most_common(int(os.environ.get("ICOUNT_ROWS", "20"))):
            if v > 0:
                print(f"  {v / n:8.0f}  {100 * v / n / per:5.1f}%  {name}")

main()
