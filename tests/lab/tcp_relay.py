#!/usr/bin/env python3
"""Relay stdin/stdout to a TCP port on 127.0.0.1: for QEMU's slirp
`guestfwd=tcp:ADDR:PORT-cmd:python3 tcp_relay.py HOSTPORT`, which runs
one relay per guest connection with the connection on fds 0 and 1.

    python3 tests/lab/tcp_relay.py PORT
"""

import os
import selectors
import socket
import sys


def main():
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    sel = selectors.DefaultSelector()
    sel.register(0, selectors.EVENT_READ)
    sel.register(sock, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj == 0:
                data = os.read(0, 65536)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    sel.unregister(0)
                    continue
                sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    return 0
                while data:
                    data = data[os.write(1, data):]


if __name__ == "__main__":
    sys.exit(main())
