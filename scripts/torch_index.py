"""A static HTTPS server for scripts/docker_lab.sh: the stand-in PyTorch CPU index on the docker
bridge. Usage: torch_index.py ROOT HOST PORT CERT KEY."""

import functools
import http.server
import ssl
import sys


def main() -> None:
    root, host, port, cert, key = sys.argv[1:6]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
    httpd = http.server.ThreadingHTTPServer((host, int(port)), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
