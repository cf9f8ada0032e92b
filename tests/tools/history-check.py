#!/usr/bin/env python3
"""history-check.py - check a queue's history against mq's guarantees.

usage: history-check.py [--lease SECS] [--fifo] [--expect-kills] LOGDIR

Reads the logs tests/tools/history-run.sh wrote in LOGDIR (the line
formats are listed at the top of that script) and checks, Jepsen-style,
the invariants of issue 8:

 1. Every send that reported success is delivered (or dead-lettered), with
    the body and id it was sent with; a send that failed delivers nothing;
    nothing is delivered that was never sent.  A killed send may go either
    way.
 2. No message is delivered again after an ack of it succeeded: no later
    claim (by time, or by a higher attempt number), and no second
    successful ack.
 3. No message is held by two consumers at once within a lease: the spans
    in which each delivery surely held its message never overlap, and
    every delivery but the last of a message was given up for a reason
    (its consumer was killed, its lease ran out, its ack was killed).
 4. With --fifo (one consumer), order: each producer's messages are first
    delivered in the order sent, and a message whose send ended before
    another's began is first delivered before it (commit order).
 5. After the drain the queue is empty and mq-fsck finds nothing.

Times are the wall clock ($EPOCHREALTIME, as mq's own deadlines), read
by the processes involved, so a check only flags what is certain: a
claim that began after an ack ended, holds that surely overlap.

Prints the counts (sent, acked-sent, delivered, duplicates with their
justification, lost, reordered, kills) and each violation; exits 1 if
there is any, 0 otherwise.  Standard library only.
"""
import argparse
import collections
import glob
import os
import re
import sys

BODY_RE = re.compile(r'^producer (\d+) seq (\d+)$')
OK_RE = re.compile(r'([0-9a-f]{16}) attempt (\d+): ok ')
RECEIPT_RE = re.compile(r'^([0-9a-f]{16})\.(\d+)\.[kl][0-9a-f]{12}$')
ID_RE = re.compile(r'^[0-9a-f]{16}$')


def usec(text):
    """$EPOCHREALTIME ("SECONDS.MICROSECONDS") as integer microseconds."""
    sec, _, frac = text.partition('.')
    return int(sec) * 1000000 + int((frac + '000000')[:6])


class Send:
    __slots__ = ('key', 'start', 'end', 'rc', 'id')

    def __init__(self, key, start, end, rc, id_):
        self.key, self.start, self.end, self.rc, self.id = \
            key, start, end, rc, id_


class Delivery:
    """One receipt of a message by a consumer.

    claim_lo, claim_hi: the claim surely happened in between.
    acked: True (an ack surely succeeded), False (surely not), None (unknown:
    the consumer died around it).  ack_hi: the ack, if any, was done by then.
    hold: a span (lo, hi) in which the message was surely held by this
    delivery, or None.  why: for one not surely acked, why it was given up.
    """
    __slots__ = ('key', 'body', 'kind', 'who', 'claim_lo', 'claim_hi',
                 'attempt', 'receipt', 'id', 'acked', 'ack_hi', 'hold', 'why',
                 'order')
    count = 0

    def __init__(self, body, kind, who, claim_lo, claim_hi, **kw):
        self.body, self.kind, self.who = body, kind, who
        self.claim_lo, self.claim_hi = claim_lo, claim_hi
        m = BODY_RE.match(body)
        self.key = (int(m.group(1)), int(m.group(2))) if m else None
        self.attempt = kw.get('attempt')
        self.receipt = kw.get('receipt')
        self.id = kw.get('id')
        self.acked = kw.get('acked')
        self.ack_hi = kw.get('ack_hi')
        self.hold = kw.get('hold')
        self.why = kw.get('why')
        # Deliveries of one log in the order logged: the drain's all
        # share one time, and this is their order.
        Delivery.count += 1
        self.order = Delivery.count

    def __str__(self):
        return '%s by %s (claimed %s..%s, attempt %s, receipt %s)' % (
            self.kind, self.who, self.claim_lo, self.claim_hi,
            self.attempt, self.receipt)


def lines(pattern, logdir):
    for path in sorted(glob.glob(os.path.join(logdir, pattern))):
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                yield path, line.rstrip('\n')


def split(line, n):
    """The first n fields of line, and the rest (a body, with spaces)."""
    parts = line.split(' ', n)
    while len(parts) <= n:
        parts.append('')
    return parts


class History:
    def __init__(self, logdir, lease_s):
        self.logdir = logdir
        self.lease = lease_s * 1000000
        self.sends = {}
        self.deliveries = []
        self.kills = collections.Counter()
        self.queue = {}
        self.dead_bodies = []
        self.anomalies = []
        self.read()

    def read(self):
        d = self.logdir
        for _, line in lines('p*.log', d):
            f = line.split(' ')
            if f[0] != 'S' or len(f) != 7:
                continue
            key = (int(f[1]), int(f[2]))
            self.sends[key] = Send(key, usec(f[3]), usec(f[4]), int(f[5]),
                                   f[6] if ID_RE.match(f[6]) else None)
        self.read_leasers()
        self.read_handlers('x', 'X', 'exec')
        self.read_handlers('w', 'W', 'watch')
        self.read_streams()
        for _, line in lines('drain.log', d):
            f = split(line, 2)
            t = usec(f[1])
            self.deliveries.append(Delivery(f[2], 'drain', 'drain', t, None,
                                            acked=True, ack_hi=None))
        for _, line in lines('killer.log', d):
            f = line.split(' ')
            if f[0] == 'K':
                self.kills[f[4]] += 1
        for _, line in lines('queue.log', d):
            f = split(line, 2)
            if f[1] == 'dead-body':
                self.dead_bodies.append(f[2])
            elif f[1] == 'drain':
                t0, t1, rc = f[2].split(' ')
                self.queue['drain'] = int(rc)
                for dl in self.deliveries:
                    if dl.kind == 'drain':
                        dl.claim_hi = usec(t1)
            elif f[1] in ('start', 'stop'):
                self.queue[f[1]] = usec(f[2])
            else:
                self.queue[f[1]] = int(f[2])

    def read_leasers(self):
        for path, line in lines('l*.log', self.logdir):
            f = split(line, 6)
            if f[0] == 'L' and f[4] == '0':
                t0, t1 = usec(f[2]), usec(f[3])
                m = RECEIPT_RE.match(f[5])
                if not m:
                    self.anomalies.append('%s: no receipt: %s' % (path, line))
                    continue
                # No ack (yet): the lease runs out at claim + lease at
                # the earliest, and the message is surely held till then.
                self.deliveries.append(Delivery(
                    f[6], 'lease', f[1], t0, t1, attempt=int(m.group(2)),
                    receipt=f[5], id=m.group(1), acked=False,
                    hold=(t1, t0 + self.lease), why='not acked: lease ran out'))
            elif f[0] == 'L' and f[4] not in ('1', '137'):
                self.anomalies.append('%s: mq-recv -L exit %s' % (path, f[4]))
            elif f[0] == 'A':
                a0, a1, rc, receipt = usec(f[2]), usec(f[3]), int(f[4]), f[5]
                dl = next((x for x in reversed(self.deliveries)
                           if x.receipt == receipt), None)
                if dl is None:
                    self.anomalies.append('%s: ack of unknown %s' %
                                          (path, receipt))
                    continue
                dl.hold = (dl.hold[0], min(dl.hold[1], a0))
                if rc == 0:
                    dl.acked, dl.ack_hi, dl.why = True, a1, None
                elif rc == 1:
                    dl.why = 'ack stale: lease ran out'
                elif rc == 137:
                    dl.acked, dl.ack_hi, dl.why = None, a1, 'ack killed'
                else:
                    self.anomalies.append('%s: mq-ack exit %d' % (path, rc))

    def read_handlers(self, prefix, tag, kind):
        runs = {}
        for path, line in lines(prefix + '*.log', self.logdir):
            f = line.split(' ')
            if f[0] == tag:
                runs[f[1]] = (usec(f[2]), usec(f[3]), int(f[4]))
        oks = {}
        errs = {}
        for path in glob.glob(os.path.join(self.logdir, prefix + '*.*.err')):
            token = os.path.basename(path)[:-len('.err')]
            with open(path, encoding='utf-8', errors='replace') as fh:
                text = fh.read()
            oks[token] = {(m.group(1), int(m.group(2)))
                          for m in OK_RE.finditer(text)}
            errs[token] = text
        for path, line in lines(prefix + '*.hlog', self.logdir):
            f = split(line, 7)
            if f[0] != 'D':
                continue
            token, h0, h1 = f[1], usec(f[2]), usec(f[3])
            id_, attempt, receipt, body = f[4], int(f[5]), f[6], f[7]
            start, end, rc = runs.get(token, (None, None, None))
            dl = Delivery(body, kind, token, start, h0, attempt=attempt,
                          receipt=receipt, id=id_, acked=None, ack_hi=end)
            if kind == 'exec':
                ok = rc == 0
            else:
                ok = (id_, attempt) in oks.get(token, ())
            if ok:
                # The consumer lived through the handler and acked.
                dl.acked, dl.hold, dl.why = True, (h0, h1), None
            elif rc == 137:
                dl.why = 'consumer killed'
            elif rc is None:
                dl.why = 'consumer run not logged'
            elif kind == 'exec' and rc == 75:
                dl.acked, dl.why = False, 'lease lost'
            else:
                dl.acked = False
                dl.why = 'UNEXPLAINED (consumer exit %s)' % rc
                self.anomalies.append('%s %s: handler ran, consumer exit %s,'
                                      ' no ack: %s' % (kind, token, rc,
                                                       errs.get(token, '')))
            self.deliveries.append(dl)

    def read_streams(self):
        runs = {}
        bodies = collections.defaultdict(list)
        for path, line in lines('s*.log', self.logdir):
            f = split(line, 3)
            if f[0] == 'V':
                runs[f[1]] = (usec(f[2]), usec(f[3].split(' ')[0]),
                              int(f[3].split(' ')[1]))
            elif f[0] == 'T':
                bodies[f[1]].append((usec(f[2]), f[3]))
        for token, seen in bodies.items():
            start, end, rc = runs.get(token, (None, None, None))
            errfile = os.path.join(self.logdir, token + '.err')
            ack_failed = False
            if os.path.exists(errfile):
                with open(errfile, encoding='utf-8', errors='replace') as fh:
                    ack_failed = any('mq-watch: ' in l and 'signal' not in l
                                     for l in fh)
            for i, (t, body) in enumerate(seen):
                last = i == len(seen) - 1
                # A stream acks each body right after writing it, before
                # claiming the next: all but the last of a killed run, or
                # of one that reported an error, were surely acked, by
                # the time the next body was read.  The reader may lag
                # behind, so only the run's start surely precedes a claim.
                nxt = end if last else seen[i + 1][0]
                dl = Delivery(body, 'stream', token, start, t, acked=True,
                              ack_hi=nxt)
                if last and rc != 0:
                    dl.acked, dl.why = None, 'consumer killed'
                elif ack_failed:
                    dl.acked, dl.why = None, 'ack failed (logged)'
                self.deliveries.append(dl)


def when(dl):
    """When a delivery surely had claimed its message (else earliest known)."""
    if dl.claim_hi is not None:
        return dl.claim_hi
    return dl.claim_lo if dl.claim_lo is not None else 0


def check(h, fifo, expect_kills):
    bad = collections.defaultdict(list)
    out = []
    by_key = collections.defaultdict(list)
    for dl in h.deliveries:
        if dl.key is None or dl.key not in h.sends:
            bad['delivered, never sent'].append('%r: %s' % (dl.body, dl))
            continue
        by_key[dl.key].append(dl)
    dead = collections.Counter()
    for body in h.dead_bodies:
        m = BODY_RE.match(body)
        if m:
            dead[(int(m.group(1)), int(m.group(2)))] += 1
        else:
            bad['dead letter never sent'].append(repr(body))

    # Invariant 1.
    ok_sent = [s for s in h.sends.values() if s.rc == 0]
    killed = [s for s in h.sends.values() if s.rc == 137]
    failed = [s for s in h.sends.values() if s.rc not in (0, 137)]
    lost = [s for s in ok_sent if s.key not in by_key and s.key not in dead]
    for s in lost:
        bad['lost'].append('producer %d seq %d (id %s, sent %d..%d)' %
                           (s.key[0], s.key[1], s.id, s.start, s.end))
    for s in failed:
        if s.key in by_key:
            bad['failed send delivered'].append(
                'producer %d seq %d (exit %d)' % (s.key[0], s.key[1], s.rc))
    for s in ok_sent:
        if s.id is None:
            bad['send succeeded without an id'].append(str(s.key))
    for key, dls in by_key.items():
        s = h.sends[key]
        ids = {dl.id for dl in dls if dl.id is not None}
        if s.id is not None:
            ids.add(s.id)
        if len(ids) > 1:
            bad['one message, several ids'].append(
                'producer %d seq %d: %s' % (key[0], key[1], sorted(ids)))
        for dl in dls:
            if dl.claim_hi is not None and dl.claim_hi < s.start:
                bad['delivered before it was sent'].append(str(dl))
    # Ids are unique: two messages never share one.
    owner = {}
    for key, dls in by_key.items():
        for dl in dls:
            if dl.id is not None and owner.setdefault(dl.id, key) != key:
                bad['two messages, one id'].append(dl.id)

    # Invariants 2 and 3, and the justification of every duplicate.
    why = collections.Counter()
    dups = 0
    for key, dls in by_key.items():
        dups += len(dls) - 1
        acked = [dl for dl in dls if dl.acked is True]
        if len(acked) > 1:
            bad['acked twice'].append('; '.join(map(str, acked)))
        for a in acked:
            for dl in dls:
                if dl is a:
                    continue
                after = (a.ack_hi is not None and dl.claim_lo is not None and
                         dl.claim_lo > a.ack_hi)
                higher = (a.attempt is not None and dl.attempt is not None and
                          dl.attempt > a.attempt)
                if after or higher:
                    bad['delivered after its ack succeeded'].append(
                        'producer %d seq %d: acked %s, then %s' %
                        (key[0], key[1], a, dl))
        for i, x in enumerate(dls):
            for y in dls[i + 1:]:
                if x.hold and y.hold and x.hold[0] < y.hold[1] and \
                        y.hold[0] < x.hold[1]:
                    bad['held by two consumers at once'].append(
                        'producer %d seq %d: %s during %s, %s during %s' %
                        (key[0], key[1], x, x.hold, y, y.hold))
        # Every delivery of a message delivered more than once but the
        # one surely acked must have been given up, for a reason.
        if len(dls) > 1:
            for dl in dls:
                if dl.acked is not True:
                    why[dl.why or 'unknown'] += 1
    unjustified = sum(n for w, n in why.items()
                      if w.startswith('UNEXPLAINED') or w == 'unknown')
    if unjustified:
        bad['duplicate without justification'].append(
            '%d (%s)' % (unjustified, dict(why)))

    # Invariant 4.
    reordered_prod = reordered_commit = 0
    examples = []
    firsts = []
    for key, dls in by_key.items():
        first = min(dls, key=lambda dl: (when(dl), dl.order))
        firsts.append((when(first), first.order, key))
    firsts.sort()
    top_seq = {}
    max_start = None
    max_start_key = None
    for _, _, key in firsts:
        s = h.sends[key]
        if top_seq.get(key[0], 0) > key[1]:
            reordered_prod += 1
            examples.append('producer %d seq %d first delivered after seq %d'
                            % (key[0], key[1], top_seq[key[0]]))
        top_seq[key[0]] = max(top_seq.get(key[0], 0), key[1])
        if max_start is not None and s.end < max_start:
            reordered_commit += 1
            examples.append('producer %d seq %d (sent by %d) first delivered'
                            ' after producer %d seq %d (sent from %d)' %
                            (key[0], key[1], s.end, max_start_key[0],
                             max_start_key[1], max_start))
        if max_start is None or s.start > max_start:
            max_start, max_start_key = s.start, key
    if fifo and (reordered_prod or reordered_commit):
        bad['reordered'].extend(examples)

    # Invariant 5, and the run itself.
    q = h.queue
    for folder in ('new', 'cur', 'delay', 'quarantine'):
        if q.get(folder, 0) != 0:
            bad['left in the queue after the drain'].append(
                '%s/: %d' % (folder, q[folder]))
    if q.get('fsck', 0) != 0:
        bad['mq-fsck found problems after the run'].append(
            'exit %d' % q['fsck'])
    if q.get('drain', 0) != 0:
        bad['drain failed'].append('exit %d' % q['drain'])
    if 'drain' not in q:
        bad['run incomplete'].append('no drain in queue.log')
    if not ok_sent or not h.deliveries:
        bad['nothing happened'].append('%d sent, %d delivered' %
                                       (len(ok_sent), len(h.deliveries)))
    if expect_kills and not h.kills:
        bad['no process was killed'].append('')
    for a in h.anomalies:
        bad['anomaly'].append(a)
    # A sanitizer report from any program (ASan, UBSan, LSan builds).
    for path, line in lines('*.err', h.logdir):
        if 'Sanitizer' in line or 'runtime error:' in line:
            bad['sanitizer report'].append('%s: %s' % (
                os.path.basename(path), line))

    kinds = collections.Counter(dl.kind for dl in h.deliveries)
    killed_delivered = sum(1 for s in killed if s.key in by_key)
    out.append('history: sent %d: acked-sent %d, killed %d (%d of them '
               'delivered), failed %d' % (len(h.sends), len(ok_sent),
                                          len(killed), killed_delivered,
                                          len(failed)))
    out.append('history: delivered %d messages in %d deliveries (%s)' % (
        len(by_key), len(h.deliveries),
        ', '.join('%s %d' % kv for kv in sorted(kinds.items()))))
    out.append('history: dead-lettered %d' % sum(dead.values()))
    out.append('history: duplicates %d (%s), unjustified %d' % (
        dups, ', '.join('%s: %d' % kv for kv in sorted(why.items())) or
        'none', unjustified))
    out.append('history: lost %d' % len(lost))
    out.append('history: acked then delivered again %d' %
               len(bad['delivered after its ack succeeded']))
    out.append('history: held by two consumers at once %d' %
               len(bad['held by two consumers at once']))
    out.append('history: reordered %d per producer, %d against commit '
               'order (%s)' % (reordered_prod, reordered_commit,
                               'FIFO promised: one consumer' if fifo else
                               'not promised: several consumers'))
    out.append('history: kills %d (%s)' % (
        sum(h.kills.values()),
        ', '.join('%s %d' % kv for kv in sorted(h.kills.items())) or 'none'))
    out.append('history: queue after drain: %s; mq-fsck exit %s' % (
        ' '.join('%s/ %s' % (k, q.get(k, '?'))
                 for k in ('new', 'cur', 'delay', 'dead', 'quarantine',
                           'tmp')), q.get('fsck', '?')))
    violations = {k: v for k, v in bad.items() if v}
    # One line of numbers for tests/stress.sh to add up over rounds.
    out.append('totals sent=%d acked_sent=%d killed_sends=%d messages=%d '
               'deliveries=%d duplicates=%d unjustified=%d lost=%d '
               'after_ack=%d held_twice=%d reordered=%d kills=%d '
               'violations=%d' % (
                   len(h.sends), len(ok_sent), len(killed), len(by_key),
                   len(h.deliveries), dups, unjustified, len(lost),
                   len(bad['delivered after its ack succeeded']),
                   len(bad['held by two consumers at once']),
                   reordered_prod + reordered_commit if fifo else 0,
                   sum(h.kills.values()),
                   sum(len(v) for v in violations.values())))
    for kind, items in sorted(violations.items()):
        out.append('VIOLATION: %s: %d' % (kind, len(items)))
        for item in items[:10]:
            out.append('  ' + item)
    out.append('history: %s' % ('FAILED' if violations else 'OK'))
    return out, bool(violations)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--lease', type=float, default=2,
                    help='the lease mq-recv -L was given (seconds)')
    ap.add_argument('--fifo', action='store_true',
                    help='one consumer: check FIFO order too')
    ap.add_argument('--expect-kills', action='store_true',
                    help='fail if no process was killed')
    ap.add_argument('logdir')
    a = ap.parse_args()
    if not os.path.isdir(a.logdir):
        print('history-check: %s: not a directory' % a.logdir,
              file=sys.stderr)
        return 64
    out, failed = check(History(a.logdir, a.lease), a.fifo, a.expect_kills)
    print('\n'.join(out))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
