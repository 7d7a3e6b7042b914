"""Find and read a catalog from wherever `sdk-build pull --from` points, and say where each bundle is fetched from.

Accepted sources:

- `http(s)://host:port` (a gemma-edge server, or a static folder): tries `<url>/api/catalog`, then
  `<url>/catalog.json`;
- `http(s)://.../catalog.json` or `.../api/catalog`: that document;
- a local `catalog.json`, or a folder holding one;
- `hf:ORG/NAME[@REVISION]`: `catalog.json` at the root of a Hugging Face model repository, fetched with
  `huggingface_hub.hf_hub_download`; its bundles are then fetched from the same commit through
  `hf_hub_url` (the Hub redirects to its CDN) with huggingface_hub's headers (your token, if logged in), by the same
  resumable, verified downloader as every other source. `HF_ENDPOINT` is honoured; offline it fails in seconds.

Bundle URLs are resolved against the catalog's own URL (see `sdk_build.artifacts.catalog`).

**Trust.** A catalog from elsewhere is data, not instructions: it may only lead where it came from. A catalog
fetched over http(s) or from the Hub may name http(s) bundle URLs only (a `file:` URL there would copy a local file
of the attacker's choosing into `--dest`); only a catalog read from the local disk may name `file:` URLs. A
catalog is at most `MAX_CATALOG_BYTES` (refused beyond, not read whole), must arrive without stalling
(`sdk_build.distribute.transfer_guard`), and is checked against its JSON Schema before anything acts on it
(`sdk_build.artifacts.catalog.parse_catalog`).
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import posixpath
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sdk_build.artifacts.catalog import CATALOG_NAME, CatalogBundle, parse_catalog
from sdk_build.artifacts.json_shape import decode_json
from sdk_build.distribute.download import USER_AGENT, RemoteFile
from sdk_build.distribute.transfer_guard import OPENER, StallGuard, read_body
from sdk_build.errors import CatalogError, PullError, os_error_message
from sdk_build.sources.reachability import unreachable

DEFAULT_HF_ENDPOINT = "https://huggingface.co"
_HF = re.compile(r"^hf:([\w.-]+/[\w.-]+)(?:@([\w./-]+))?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
HF_ETAG_TIMEOUT_S = 5.0
MAX_CATALOG_BYTES = 16 * 2**20
"""A catalog entry is about 2 KB: 16 MiB is thousands of bundles. A bigger document is refused, not read whole."""
REMOTE_SCHEMES = ("http", "https")
LOCAL_SCHEMES = ("file", "http", "https")


@dataclasses.dataclass(frozen=True)
class LoadedCatalog:
    location: str
    """Where the catalog was read from (URL, file, or hf:ORG/NAME@commit)."""
    data: dict[str, Any]
    bundles: list[CatalogBundle]
    remote_for: Callable[[CatalogBundle], RemoteFile]


def load_catalog(source: str, *, timeout: float = 30.0, cache_dir: Path | None = None) -> LoadedCatalog:
    if source.startswith("hf:"):
        return _from_hub(source, cache_dir)
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme in ("http", "https"):
        return _from_http(source, timeout)
    return _from_path(Path(source).expanduser())


def decode_catalog(raw: bytes, where: str) -> Any:
    """The JSON document in `raw`, or a CatalogError saying in one line why it is not one."""
    if len(raw) > MAX_CATALOG_BYTES:
        raise CatalogError(f"{where} is larger than {MAX_CATALOG_BYTES // 2**20} MiB: not a catalog; refusing it")
    return decode_json(raw, where, "catalog", "point --from at a catalog", CatalogError)


def _plain(url: str, schemes: tuple[str, ...]) -> Callable[[CatalogBundle], RemoteFile]:
    def remote_for(bundle: CatalogBundle) -> RemoteFile:
        resolved = urllib.parse.urljoin(url, bundle.url)
        scheme = urllib.parse.urlsplit(resolved).scheme.lower()
        if scheme not in schemes:
            raise PullError(
                f"{bundle.file}: the catalog {url} names {resolved!r}; a catalog from {urllib.parse.urlsplit(url).scheme}: "
                f"may only lead to {' or '.join(schemes)} URLs, refusing it"
            )
        return RemoteFile(bundle.file, resolved, bundle.bytes, bundle.sha256, schemes=schemes)

    return remote_for


def _read_local(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_CATALOG_BYTES + 1)
    except OSError as exc:
        raise CatalogError(os_error_message(exc, f"cannot read {what}")) from None


def _from_path(path: Path) -> LoadedCatalog:
    try:
        if path.is_dir():
            path = path / CATALOG_NAME
            if not path.is_file():
                raise CatalogError(
                    f"{path.parent} has no {CATALOG_NAME}; run `sdk-build catalog --bundles {path.parent}`"
                )
        if not path.is_file():
            raise CatalogError(
                f"{path} is neither a catalog file, a folder with {CATALOG_NAME}, an http(s) URL nor hf:ORG/NAME"
            )
    except OSError as exc:
        raise CatalogError(os_error_message(exc, "cannot read the catalog")) from None
    data = decode_catalog(_read_local(path, "the catalog"), str(path))
    location = path.resolve().as_uri()
    return LoadedCatalog(str(path), data, parse_catalog(data, str(path)), _plain(location, LOCAL_SCHEMES))


def _candidates(url: str) -> list[str]:
    path = urllib.parse.urlsplit(url).path
    if path.endswith(".json") or "/api/catalog" in path:
        return [url]
    base = url if url.endswith("/") else url + "/"
    return [urllib.parse.urljoin(base, "api/catalog"), urllib.parse.urljoin(base, CATALOG_NAME)]


def _from_http(url: str, timeout: float) -> LoadedCatalog:
    tried = []
    for candidate in _candidates(url):
        request = urllib.request.Request(candidate, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        try:
            with StallGuard(timeout) as guard:
                try:
                    with OPENER.open(request, timeout=timeout) as response:
                        length = response.headers.get("Content-Length", "")
                        if length.isdigit() and int(length) > MAX_CATALOG_BYTES:
                            raise CatalogError(
                                f"{candidate} announces {int(length)} bytes: larger than "
                                f"{MAX_CATALOG_BYTES // 2**20} MiB, not a catalog; refusing it"
                            )
                        body, final_url = read_body(response, guard, MAX_CATALOG_BYTES), response.geturl()
                except ValueError:
                    raise CatalogError(
                        f"{candidate} sent more than {MAX_CATALOG_BYTES // 2**20} MiB: not a catalog; refusing it"
                    ) from None
                except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                    if guard.stalled and not isinstance(exc, urllib.error.HTTPError):
                        raise PullError(f"fetching the catalog {candidate}: {guard.reason}") from None
                    raise
        except urllib.error.HTTPError as exc:
            tried.append(f"{candidate} (HTTP {exc.code})")
            if exc.code == 404:
                continue
            raise CatalogError(f"fetching the catalog {candidate} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise PullError(f"cannot reach {candidate}: {reason}; is the server running and the URL right?") from None
        data = decode_catalog(body, candidate)
        if not isinstance(data, dict):
            raise CatalogError(f"{candidate} did not return a JSON object; point --from at a catalog or a gemma-edge server")
        return LoadedCatalog(final_url, data, parse_catalog(data, final_url), _plain(final_url, REMOTE_SCHEMES))
    raise CatalogError(f"no catalog at {url}: tried {', '.join(tried)}")


def _from_hub(source: str, cache_dir: Path | None) -> LoadedCatalog:
    match = _HF.match(source)
    if not match:
        raise CatalogError(f"bad Hugging Face reference {source!r}; use hf:ORG/NAME or hf:ORG/NAME@REVISION")
    repo, revision = match.group(1), match.group(2)
    from huggingface_hub import hf_hub_download, hf_hub_url
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError
    from huggingface_hub.utils import build_hf_headers

    from sdk_build.sources.checkpoint import default_cache_dir

    # Read now, not at huggingface_hub's import: a caller (or test) may set HF_ENDPOINT afterwards.
    endpoint = os.environ.get("HF_ENDPOINT") or None
    cache = (Path(cache_dir) if cache_dir else default_cache_dir()) / "hf"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    unreachable = None if offline else _unreachable(endpoint or DEFAULT_HF_ENDPOINT)
    try:
        path = hf_hub_download(
            repo,
            CATALOG_NAME,
            revision=revision,
            cache_dir=str(cache),
            endpoint=endpoint,
            etag_timeout=HF_ETAG_TIMEOUT_S,
            local_files_only=offline or unreachable is not None,
        )
    except GatedRepoError as exc:
        raise PullError(f"{repo} is gated: accept its terms on Hugging Face and log in (`hf auth login`)") from exc
    except RepositoryNotFoundError as exc:
        raise PullError(
            f"Hugging Face has no repository {repo!r} (or it is private: log in with `hf auth login`)"
        ) from exc
    except (LocalEntryNotFoundError, OSError) as exc:
        why = unreachable or ("HF_HUB_OFFLINE is set" if offline else type(exc).__name__)
        raise PullError(
            f"cannot fetch {CATALOG_NAME} of {repo} from Hugging Face ({endpoint or DEFAULT_HF_ENDPOINT}): offline or "
            f"blocked ({why}) and no copy in {cache}; pull from a server or a local folder instead (--from URL|DIR)"
        ) from exc
    except Exception as exc:  # huggingface_hub raises many HTTP error types, e.g. EntryNotFoundError
        raise PullError(f"fetching {CATALOG_NAME} of {repo} from Hugging Face failed: {exc}") from exc
    # hf_hub_download returns .../snapshots/<commit>/catalog.json: fetch the bundles from that same commit.
    commit = Path(path).parent.name
    pinned = commit if _COMMIT.match(commit) else revision
    headers = build_hf_headers(user_agent=USER_AGENT)
    location = f"hf:{repo}@{pinned or 'main'}"
    data = decode_catalog(_read_local(Path(path), f"the {CATALOG_NAME} of {repo}"), f"the {CATALOG_NAME} of {repo}")

    def remote_for(bundle: CatalogBundle) -> RemoteFile:
        scheme = urllib.parse.urlsplit(bundle.url).scheme.lower()
        if scheme in REMOTE_SCHEMES:
            return RemoteFile(bundle.file, bundle.url, bundle.bytes, bundle.sha256)
        if scheme:
            raise PullError(
                f"{bundle.file}: {location} names {bundle.url!r}; a catalog from the Hub may only lead to http(s) "
                "URLs or files of its repository, refusing it"
            )
        name = posixpath.normpath(posixpath.join(posixpath.dirname(CATALOG_NAME), urllib.parse.unquote(bundle.url)))
        if name.startswith(("../", "/")) or name == "..":
            raise CatalogError(f"{location}: bundle url {bundle.url!r} points outside the repository")
        url = hf_hub_url(repo, name, revision=pinned, endpoint=endpoint)
        return RemoteFile(bundle.file, url, bundle.bytes, bundle.sha256, headers=dict(headers))

    return LoadedCatalog(location, data, parse_catalog(data, location), remote_for)


def _unreachable(endpoint: str, timeout: float = HF_ETAG_TIMEOUT_S) -> str | None:
    """See `sdk_build.sources.reachability.unreachable`; an unreachable Hub means the cached catalog, if any, is used."""
    return unreachable(endpoint, timeout)
