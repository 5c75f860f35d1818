"""What the examples share: where the server is and who they are."""

from __future__ import annotations

import argparse
import os

from newage.sdk import Client


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--server", default="http://127.0.0.1:4000", help="the newage server")
    p.add_argument("--client-id", required=True, help="a trusted clientId")
    p.add_argument("--key", default=os.environ.get("NEWAGE_KEY"), help="its key (or NEWAGE_KEY)")
    p.add_argument("--identity", help="this instance's identity (default: the clientId)")
    return p


def client(args: argparse.Namespace) -> Client:
    if not args.key:
        raise SystemExit("a key is needed: --key or NEWAGE_KEY (newage keys create <clientId>)")
    return Client(args.server, args.client_id, args.key, identity=args.identity)
