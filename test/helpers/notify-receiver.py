# A stand-in for systemd's NOTIFY_SOCKET (tests only): prints each datagram as a JSON line and
# closes the file descriptors a sender passes (systemd-notify's BARRIER=1 waits for that).
import array, json, os, socket, sys, time

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(sys.argv[1])
print(json.dumps({"listening": sys.argv[1]}), flush=True)
while True:
    data, ancillary, _flags, _address = sock.recvmsg(65536, socket.CMSG_SPACE(16 * 4))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            for fd in fds:
                os.close(fd)
    print(json.dumps({"at": time.time() * 1000, "message": data.decode("utf-8", "replace")}), flush=True)
