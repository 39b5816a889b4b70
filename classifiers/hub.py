"""Share bundles on the Hugging Face Hub: `push` a bundle folder, load one by `hf://owner/name[@revision]`.

    from harmscan.classifiers.hub import push
    push("artifacts/bundle", "acme/harmscan-default", private=True)
    HarmClassifier.load("hf://acme/harmscan-default@v1")      # also: harmscan scan --bundle hf://...

`Bundle.load` sends every `hf://` reference here (`resolve_bundle_path`), so each front that takes a bundle
(HarmClassifier.load, `--bundle` of scan, eval, serve...) takes a Hub id. The snapshot is downloaded into the
Hub cache (HF_HUB_CACHE, ~/.cache/huggingface/hub), or read from it with HF_HUB_OFFLINE=1; it is then
checked like any bundle: every file against the sha256 its manifest records, so a file corrupted or
altered after download is refused. huggingface_hub is imported only here, and only when needed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from harmscan.errors import BundleError, InputError, require

SCHEME = "hf://"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Written beside the manifest by Bundle.update (atomic rewrites): never part of a shared bundle.
_IGNORE = [".harmscan.*", "*.tmp", "*.parts/*"]


def is_hub_ref(ref: str | os.PathLike[str]) -> bool:
    # pathlib folds "hf://a/b" into "hf:/a/b" (argparse's type=Path does that to --bundle): accept both.
    return str(ref).startswith("hf:/")


def parse_hub_ref(ref: str | os.PathLike[str]) -> tuple[str, str | None]:
    """'hf://owner/name@rev' -> ('owner/name', 'rev'); no revision: (repo_id, None), the default branch."""
    text = str(ref)
    rest = text[len(SCHEME):] if text.startswith(SCHEME) else text[len("hf:/"):]
    repo_id, _, revision = rest.partition("@")
    if not _REPO_ID.match(repo_id):
        raise InputError(f"{text!r} is not a Hub bundle id: use hf://owner/name or hf://owner/name@revision")
    return repo_id, revision or None


def resolve_bundle_path(ref: str | os.PathLike[str]) -> Path:
    """A local bundle folder for `ref`: a path as given, or the downloaded snapshot of an `hf://` id."""
    return download(ref) if is_hub_ref(ref) else Path(ref)


def _hub() -> Any:
    return require("huggingface_hub", "train")


def _endpoint() -> str | None:
    # Read at call time (huggingface_hub reads HF_ENDPOINT once, at import): a mirror or a test hub.
    return os.environ.get("HF_ENDPOINT") or None


def download(ref: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None,
             token: str | None = None) -> Path:
    """The snapshot folder of the Hub bundle `ref` (hf://owner/name[@revision]) in the Hub cache."""
    repo_id, revision = parse_hub_ref(ref)
    hub = _hub()
    errors = require("huggingface_hub.errors", "train")
    where = f"hf://{repo_id}" + (f"@{revision}" if revision else "")
    try:
        path = hub.snapshot_download(repo_id, revision=revision, repo_type="model", cache_dir=cache_dir,
                                     token=token, endpoint=_endpoint())
    except errors.RepositoryNotFoundError:
        raise BundleError(f"{where}: no such model repository on the Hub (a private one needs a token: "
                          "`hf auth login` or HF_TOKEN)") from None
    except errors.RevisionNotFoundError:
        raise BundleError(f"{where}: the repository has no revision {revision!r}") from None
    except errors.LocalEntryNotFoundError:
        raise BundleError(f"{where} is not in the Hub cache and the Hub cannot be reached "
                          "(offline, or HF_HUB_OFFLINE=1): download it once with a network") from None
    except (OSError, errors.HfHubHTTPError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise BundleError(f"cannot download {where}: {detail}") from None
    return Path(path)


def push(bundle_dir: str | os.PathLike[str], repo_id: str, *, private: bool = False, revision: str | None = None,
         token: str | None = None, commit_message: str | None = None, license: str | None = None) -> str:
    """Upload a verified bundle to the Hub model repository `repo_id` (created when missing, `private` then)
    and return the commit id; load it back with `hf://{repo_id}@{commit}`. Its README.md (the model card)
    is written again first from the current manifest, so the card shows the thresholds being shipped."""
    from harmscan.classifiers.bundle import Bundle
    from harmscan.classifiers.modelcard import write_model_card

    parse_hub_ref(SCHEME + repo_id)  # the same id rules as loading
    bundle = Bundle.load(bundle_dir)  # never share a tampered or incomplete bundle
    write_model_card(bundle.path, bundle.info, repo_id=repo_id, license=license)
    hub = _hub()
    api = hub.HfApi(endpoint=_endpoint(), token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(bundle.path), repo_id=repo_id, repo_type="model", revision=revision,
            commit_message=commit_message or f"harmscan bundle {bundle.fingerprint}", ignore_patterns=_IGNORE,
        )
    except (OSError, require("huggingface_hub.errors", "train").HfHubHTTPError, ValueError) as exc:
        detail = " ".join(str(exc).split())
        raise BundleError(f"cannot push {bundle.path} to {repo_id}: {detail}") from None
    return str(commit.oid)
