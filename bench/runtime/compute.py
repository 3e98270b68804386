# Single-thread interpreter workload for bench/runtime: integer, float, string
# and dict work in plain Python, ROUNDS times (first argument). Runs unchanged
# on the stock MicroPython unix port and on a threadfleet board; prints a
# checksum so both sides can be seen to compute the same thing.
import sys

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def ints(n):
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1000003
    return acc


def floats(n):
    x = 0.0
    for i in range(1, n):
        x += 1.0 / (i * i)
    return int(x * 1e6)


def strings(n):
    parts = []
    for i in range(n):
        parts.append(str(i))
    return len(",".join(parts))


def dicts(n):
    d = {}
    for i in range(n):
        d[i % 97] = d.get(i % 97, 0) + i
    return sum(d.values())


total = 0
for _ in range(ROUNDS):
    total += ints(2000) + floats(2000) + strings(500) + dicts(2000)
print("checksum", total)
