"""`python -m aigc_hub remote add | remove | list`: text models that an OpenAI-compatible server serves (vLLM, TGI,
Ollama, another AIGC Hub), listed as local hub entries. Only the operator makes them (remote.py)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    rem = sub.add_parser("remote", help="text models served by an OpenAI-compatible server (vLLM, TGI, Ollama, "
                         "another AIGC Hub), listed as local hub entries").add_subparsers(dest="action", required=True)
    add = rem.add_parser("add", help="list one as a local hub entry")
    add.add_argument("repo_id", help="owner/name to list it as")
    add.add_argument("--base-url", required=True, help="the server's OpenAI API root, e.g. http://gpu-box:8000/v1")
    add.add_argument("--model", required=True, help="the model's name on that server")
    add.add_argument("--api-key-env", default=None, help="the environment variable holding its API key (the key "
                     "itself is never written)")
    add.add_argument("--completions", action="store_true", help="a base model: plain continuation "
                     "(/v1/completions) rather than chat")
    add.set_defaults(func=_add)
    rm = rem.add_parser("remove", help="delete a remote entry from the local hub (only remote entries)")
    rm.add_argument("repo_id")
    rm.set_defaults(func=_remove)
    ls = rem.add_parser("list", help="the remote entries of the local hub")
    ls.set_defaults(func=_list)


def _add(args: argparse.Namespace) -> None:
    from .added_models import add_remote

    where = add_remote(args.repo_id, args.base_url, args.model, args.api_key_env, chat=not args.completions)
    print(f"{args.repo_id}: {args.model} served at {args.base_url} ({where})")


def _remove(args: argparse.Namespace) -> None:
    from .added_models import remove_remote

    print(f"{args.repo_id}: removed ({remove_remote(args.repo_id)})")


def _list(args: argparse.Namespace) -> None:
    from . import hub
    from .added_models import remote_settings

    for entry in hub.list_models():
        settings = remote_settings(entry.ref) if entry.source == "local" else None
        if settings:
            print(f"{entry.ref}\t{settings.get('model')}\t{settings.get('base_url')}")
