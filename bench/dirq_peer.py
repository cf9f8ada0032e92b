"""dirq_peer.py - the python-dirq side of mq's benchmark (bench/run.sh).

python-dirq's QueueSimple is the closest peer to mq: one file per
element, exclusive create and rename, a lock per element while it is
worked on.  It never fsyncs.  The same operations mq's benchmark times:

  populate PATH N MAXSEC  add N elements of 1 KiB (stop after MAXSEC
                          seconds); prints how many were added
  take PATH K             K times, in a fresh QueueSimple as a new
                          consumer process would: take the oldest element
                          (first, lock, get, remove); prints the median
                          milliseconds, the CPU milliseconds and the peak
                          RSS in KiB
  drain PATH              iterate, lock, get and remove every element;
                          prints "count seconds"
"""
import resource
import sys
import time

from dirq.QueueSimple import QueueSimple


def body():
    seed = 3
    out = bytearray(1024)
    for i in range(1024):
        seed = (seed * 1103515245 + 12345) & 0xFFFFFFFF
        out[i] = 32 + (seed >> 16) % 94
    return bytes(out)


def populate(path, n, maxsec):
    q = QueueSimple(path)
    data = body()
    end = time.monotonic() + maxsec
    i = 0
    while i < n:
        q.add(data)
        i += 1
        if i % 1000 == 0 and time.monotonic() > end:
            break
    print(i)


def take(path, k):
    walls, cpus = [], []
    for _ in range(k):
        t0, c0 = time.perf_counter(), time.process_time()
        q = QueueSimple(path)
        name = q.first()
        while name is not None and not q.lock(name):
            name = q.next()
        if name is None:
            sys.exit("dirq_peer: queue is empty")
        q.get(name)
        q.remove(name)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    walls.sort()
    cpus.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("%.3f %.3f %d" % (walls[len(walls) // 2] * 1e3,
                            cpus[len(cpus) // 2] * 1e3, rss))


def drain(path):
    q = QueueSimple(path)
    t0 = time.perf_counter()
    n = 0
    for name in q:
        if q.lock(name):
            q.get(name)
            q.remove(name)
            n += 1
    print("%d %.6f" % (n, time.perf_counter() - t0))


def main():
    cmd = sys.argv[1]
    if cmd == "populate":
        populate(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "take":
        take(sys.argv[2], int(sys.argv[3]))
    elif cmd == "drain":
        drain(sys.argv[2])
    else:
        sys.exit("usage: dirq_peer.py populate|take|drain PATH ...")


if __name__ == "__main__":
    main()
