# echo-server.py
#
# The echo server of Real Python's "Socket Programming in Python (Guide)" (2022 edition,
# "Echo Server"; the 2018 edition's is the same code with '...' strings and print('Connected
# by', addr)), as published. One change: HOST and PORT come from the command line
# (python echo_server.py HOST PORT) instead of the constants "127.0.0.1" and 65432, so
# that a test can give it a free port.
#
# Kept as the guide has it: it accepts ONE connection, echoes it until the client closes,
# then exits. `harness probe --protocol echo` shows that (tests/test_probe_echo.py).

import socket
import sys

HOST = sys.argv[1]  # Standard loopback interface address (localhost)
PORT = int(sys.argv[2])  # Port to listen on (non-privileged ports are > 1023)

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind((HOST, PORT))
    s.listen()
    conn, addr = s.accept()
    with conn:
        print(f"Connected by {addr}")
        while True:
            data = conn.recv(1024)
            if not data:
                break
            conn.sendall(data)
