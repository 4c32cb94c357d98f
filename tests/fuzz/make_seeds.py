#!/usr/bin/env python3
"""Writes the seed corpora of the fuzzers whose inputs are built by hand:
the virtio devices (a driver's rings and requests in guest RAM), the
virtio-mmio register file and serve's requests. The others' seeds are real
files: state blobs and exports of snapshots of the test guest, trimmed
kernels (tests/fuzz/README.md says how). Run from anywhere; it rewrites
only the files it makes (named seed-*).

  tests/fuzz/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = 32  # fuzz_virtio_device.c's header
QSIZE = 8
QUEUES = [(0x400, 0x500, 0x600), (0x700, 0x800, 0x900), (0xA00, 0xB00, 0xC00)]
BUF = 0xD00  # data the device reads; below the rings, a network backend's frames
SPACE = 0x8000  # buffers the device fills: zeros, never in the file
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def write(corpus, name, data):
    d = os.path.join(HERE, 'corpus', corpus)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'seed-' + name), 'wb') as f:
        f.write(data)


class Ram:
    """Low guest RAM (64 KiB) with split virtqueues, filled as a driver would."""

    def __init__(self):
        self.b = bytearray(0xC000)
        self.next_buf = BUF
        self.next_space = SPACE
        self.next_desc = [0, 0, 0]
        self.avail = [0, 0, 0]

    def buf(self, data=b'', size=None):
        if size is not None:  # room only
            addr = self.next_space
            self.next_space += (size + 15) & ~15
            return addr, size
        addr = self.next_buf
        self.b[addr:addr + len(data)] = data
        self.next_buf += (len(data) + 15) & ~15
        return addr, len(data)

    def bytes(self):
        return bytes(self.b).rstrip(b'\0')

    def desc(self, table, i, addr, length, flags, nxt):
        struct.pack_into('<QIHH', self.b, table + 16 * i, addr, length, flags, nxt)

    def chain(self, q, parts, indirect=False):
        """parts: (data or size, writable); posts the chain on queue q's avail ring."""
        desc, avail, _ = QUEUES[q]
        bufs = []
        for data, writable in parts:
            addr, size = self.buf(b'', data) if isinstance(data, int) else self.buf(data)
            bufs.append((addr, size, F_WRITE if writable else 0))
        head = self.next_desc[q]
        if indirect:
            table, _ = self.buf(bytes(16 * len(bufs)))
            for i, (addr, size, flags) in enumerate(bufs):
                last = i == len(bufs) - 1
                self.desc(table, i, addr, size, flags | (0 if last else F_NEXT), i + 1)
            self.desc(desc, head, table, 16 * len(bufs), F_INDIRECT, 0)
            self.next_desc[q] += 1
        else:
            for i, (addr, size, flags) in enumerate(bufs):
                n = self.next_desc[q]
                last = i == len(bufs) - 1
                self.desc(desc, n, addr, size, flags | (0 if last else F_NEXT), n + 1)
                self.next_desc[q] += 1
        struct.pack_into('<H', self.b, avail + 4 + 2 * (self.avail[q] % QSIZE), head)
        self.avail[q] += 1
        struct.pack_into('<HH', self.b, avail, 0, self.avail[q])


def device_seed(ram, features, notifies, instance=0, ready=0b111, extra=b''):
    h = bytearray(HEADER)
    h[0] = instance
    struct.pack_into('<Q', h, 1, features)
    for q, (desc, avail, used) in enumerate(QUEUES):
        h[9 + 4 * q:13 + 4 * q] = bytes([3, desc >> 8, avail >> 8, used >> 8])
    h[21] = ready
    n = (list(notifies) + [0x7f] * 10)[:10]  # 0x7f: queue 1 again, harmless
    h[22:32] = bytes(n)
    out = bytes(h) + ram.bytes()
    return out + extra


INDIRECT = 1 << 28


def blk_seeds():
    feats = (1 << 2) | (1 << 6) | (1 << 9) | INDIRECT
    r = Ram()
    r.chain(0, [(struct.pack('<IIQ', 1, 0, 0), False), (b'\x5a' * 512, False), (1, True)])
    r.chain(0, [(struct.pack('<IIQ', 0, 0, 0), False), (512, True), (1, True)])
    r.chain(0, [(struct.pack('<IIQ', 4, 0, 0), False), (1, True)])
    r.chain(0, [(struct.pack('<IIQ', 8, 0, 0), False), (20, True), (1, True)])
    write('virtio_blk', 'rw', device_seed(r, feats, [0, 0x80]))
    r = Ram()
    r.chain(0, [(struct.pack('<IIQ', 0, 0, 127), False), (512, True), (1, True)], indirect=True)
    r.chain(0, [(struct.pack('<IIQ', 1, 0, 3), False), (b'\xa5' * 1024, False), (1, True)],
            indirect=True)
    write('virtio_blk', 'indirect-readonly', device_seed(r, feats, [0, 0x80], instance=1))
    r = Ram()
    r.chain(0, [(struct.pack('<IIQ', 0, 0, 1 << 40), False), (512, True), (1, True)])
    r.chain(0, [(struct.pack('<IIQ', 9, 0, 0), False), (1, True)])
    write('virtio_blk', 'bad-sector-type', device_seed(r, feats, [0]))


def net_seeds():
    mrg, csum, gcsum, mac, tso4 = 1 << 15, 1 << 0, 1 << 1, 1 << 5, 1 << 7
    eth = bytes.fromhex('525400123456525400abcdef0800') + b'\x45' + bytes(40)
    hdr = struct.pack('<BBHHHHH', 0, 0, 0, 0, 0, 0, 1)
    for name, feats, inst in (('tap-mrg', mrg | csum | gcsum | mac | tso4 | INDIRECT, 0),
                              ('user', mac, 1)):
        r = Ram()
        for _ in range(3):
            r.chain(0, [(1526, True)])
        r.chain(1, [(hdr, False), (eth, False)])
        r.chain(1, [(hdr + eth, False)], indirect=True)
        frames = b''
        for n in (60, 200):
            frame = (hdr + eth + bytes(range(256)))[:12 + n]
            frames += bytes([n + 11 - 12]) + frame
        r.b[0:len(frames)] = frames  # the backend's frames, at the start of RAM
        write('virtio_net', name, device_seed(r, feats, [1, 0, 1, 0], instance=inst))


def vsock_pkt(op, src_port=5000, dst_port=1024, payload=b'', src_cid=3, dst_cid=2, flags=0):
    return struct.pack('<QQIIIHHIII', src_cid, dst_cid, src_port, dst_port, len(payload), 1, op,
                       flags, 65536, 0) + payload


def vsock_seeds():
    r = Ram()
    for _ in range(4):
        r.chain(0, [(4096, True)])
    r.chain(2, [(8, True)])
    r.chain(1, [(vsock_pkt(1), False)])  # REQUEST to the listener
    r.chain(1, [(vsock_pkt(5, payload=b'hello'), False)])
    r.chain(1, [(vsock_pkt(6), False)])
    r.chain(1, [(vsock_pkt(7), False)])
    r.chain(1, [(vsock_pkt(4, flags=3), False)])
    write('virtio_vsock', 'connect-send-shutdown', device_seed(r, 0, [2, 0, 1, 0, 1, 0]))
    r = Ram()
    for _ in range(2):
        r.chain(0, [(4096, True)])
    r.chain(1, [(vsock_pkt(1, dst_port=9), False)])  # nobody listens: RST
    r.chain(1, [(vsock_pkt(5, dst_port=9, payload=b'x' * 64), False)])
    r.chain(1, [(vsock_pkt(3), False)])
    r.chain(1, [(vsock_pkt(1, src_cid=7), False)], indirect=True)
    write('virtio_vsock', 'refused', device_seed(r, INDIRECT, [1, 0]))


def console_seeds():
    r = Ram()
    r.chain(0, [(64, True)])
    r.chain(1, [(b'hello, console\n', False)])
    r.chain(1, [(b'part one ', False), (b'part two\n', False)])
    write('virtio_console', 'output', device_seed(r, 0, [1, 0]))
    r = Ram()
    r.chain(1, [(b'indirect\n', False), (b'more\n', False)], indirect=True)
    r.chain(1, [(16, True)])
    write('virtio_console', 'indirect', device_seed(r, INDIRECT, [1]))


# fuzz_virtio_mmio.c: op bit 0 write, bits 1-2 width, bit 3 register index
def reg(slot, offset, value=0, write=True, width=4):
    op = (1 if write else 0) | ({1: 0, 2: 1, 4: 2, 8: 3}[width] << 1)
    if offset < 0x100 and offset % 4 == 0:
        op |= 8
        offset //= 4
    return struct.pack('<BBHI', op, slot, offset, value)


def driver_init(slot, queues):
    recs = [reg(slot, 0x000, write=False), reg(slot, 0x008, write=False),
            reg(slot, 0x070, 1), reg(slot, 0x070, 3), reg(slot, 0x010, write=False),
            reg(slot, 0x014, 1), reg(slot, 0x010, write=False),
            reg(slot, 0x024, 1), reg(slot, 0x020, 1), reg(slot, 0x070, 0xb),
            reg(slot, 0x070, write=False)]
    for q in range(queues):
        desc, avail, used = QUEUES[q]
        recs += [reg(slot, 0x030, q), reg(slot, 0x034, write=False), reg(slot, 0x038, QSIZE),
                 reg(slot, 0x080, desc), reg(slot, 0x084, 0), reg(slot, 0x090, avail),
                 reg(slot, 0x0a0, used), reg(slot, 0x044, 1), reg(slot, 0x044, write=False)]
    recs += [reg(slot, 0x070, 0xf)]
    return recs


def mmio_seeds():
    # the machine's slots, in device_table order: console, rng, vsock, 2 disks, 2 nets
    slots = [('console', 2), ('rng', 1), ('vsock', 3), ('blk', 1), ('blk-ro', 1), ('net', 2),
             ('net-user', 2)]
    r = Ram()
    r.chain(0, [(32, True)])
    for slot, (name, queues) in enumerate(slots):
        recs = driver_init(slot, queues)
        recs += [reg(slot, 0x050, q) for q in range(queues)]
        recs += [reg(slot, 0x060, write=False), reg(slot, 0x064, 3), reg(slot, 0x0fc, write=False)]
        recs += [reg(slot, 0x100 + i, write=False, width=w) for i, w in ((0, 1), (0, 8), (4, 2), (6, 4))]
        recs += [reg(slot, 0x070, 0), reg(slot, 0x070, write=False)]
        write('virtio_mmio', name, bytes([len(recs)]) + b''.join(recs) + r.bytes())
    # odd accesses: narrow registers, a write to config space, past the last slot
    recs = [reg(0, 0x070, 1, width=2), reg(0, 0x071, 1, width=1), reg(0, 0x104, 7),
            reg(0xff, 0x000, write=False), reg(1, 0x038, 4096), reg(1, 0x044, 1),
            reg(1, 0x050, 0), reg(1, 0x070, 0x4)]
    write('virtio_mmio', 'misuse', bytes([len(recs)]) + b''.join(recs))


def serve_seeds():
    direct = [
        ('GET', '/snapshots', b''),
        ('GET', '/snapshots/fn', b''),
        ('DELETE', '/snapshots/nope', b''),
        ('POST', '/snapshots/fn/invoke', b'{"request": "ping", "timeout_ms": 500, "memory": "lazy"}'),
        ('POST', '/snapshots/fn/invoke', b'{"request": "a\\nb"}'),
        ('POST', '/snapshots/fn/clones', b'{"memory": "prefetch", "timeout_ms": 1000}'),
        ('POST', '/clones/c1/request', b'{"request": "ping", "timeout_ms": 10}'),
        ('PUT', '/clones/c1/snapshot', b'{"name": "next", "resume": true}'),
        ('GET', '/clones', b''),
        ('DELETE', '/vms/v1', b''),
        ('POST', '/vms', b'{"kernel": "/k", "initrd": "/i", "cmdline": "quiet", "mem": 256, '
         b'"cpus": 2, "boot": "pvh", "disk": ["/d.img", "/e.img,ro"], "vsock": "3,/v.sock", '
         b'"rng": true, "net": ["user,hostfwd=tcp::8080-:80"], "netns": "/run/netns/x", '
         b'"no_legacy": false, "timeout_ms": 100}'),
        ('POST', '/vms', b'{"kernel": 1, "extra": null}'),
        ('GET', '/metrics', b''),
        ('PATCH', '/vms//x/', b'[1, 2'),
    ]
    for i, (method, path, body) in enumerate(direct):
        write('serve', 'direct-%02d' % i, b'\x00' + method.encode() + b'\n' + path.encode() +
              b'\n' + body)
    body = b'{"request": "ping"}'
    http = [
        b'GET /snapshots HTTP/1.1\r\nHost: x\r\n\r\n',
        b'POST /snapshots/fn/invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
        b'Content-Length: %d\r\n\r\n' % len(body) + body,
        b'POST /vms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
        b'5\r\n{"mem\r\n9\r\n": 128}\r\n\r\n0\r\n\r\n',
        b'POST /vms HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n'
        b'Expect: 100-continue\r\n\r\n',
        b'GET /metrics HTTP/1.0\r\n\r\nGET /clones HTTP/1.1\r\nHost: y\r\n\r\n',
        b'DELETE /snapshots/%66n HTTP/1.1\r\nHost: x\r\n\r\n',
    ]
    for i, req in enumerate(http):
        write('serve', 'http-%02d' % i, b'\x01' + req)


def manifest(pages, uniques, blobs):
    m = b'SVMMANF1' + struct.pack('<IIQQ', 1, len(blobs), len(pages), uniques)
    m += b''.join(struct.pack('<I', p) for p in pages)
    m += b''.join(bytes([0x11 * (i % 15 + 1)]) * 32 for i in range(uniques))
    for name, length in blobs:
        chunks = (length + 4095) // 4096
        m += bytes([len(name)]) + name + struct.pack('<QI', length, chunks) + bytes(32 * chunks)
    return m


def import_seeds():
    # fuzz_store_import.c: an odd first byte makes the rest a manifest
    write('store_import', 'manifest', b'\x01' + manifest([0, 1, 2, 1, 0, 3, 0, 0], 3,
                                                         [(b'state', 9000), (b'config', 1)]))
    write('store_import', 'manifest-empty', b'\x01' + manifest([], 0, []))


blk_seeds()
net_seeds()
vsock_seeds()
console_seeds()
mmio_seeds()
serve_seeds()
import_seeds()
