"""The task journal: every accepted (paid) task on disk, so no result is ever lost.

One JSON file per task, ``<dir>/tasks/<request_id>.json``, written atomically (temporary file in
the same directory, fsync, ``os.replace``): concurrent tasks never touch each other's files, and a
crash mid-write leaves the previous version of the record intact. A record holds what is needed
to find the result again and to decide whether a re-queue may reuse it:

    request_id, model, params (the request body, never the key), params_hash, account (a one-way
    tag of base URL + key, so a result is only reused where it can be fetched), submitted_at,
    status (in_flight | completed | failed | expired), server_status, updated_at, outputs (URLs
    only; base64 outputs are not stored), files (local paths, if a node saved them), price_usd,
    error, note, inference_ms.

WaveSpeed keeps tasks and outputs for 7 days, so records older than that are pruned and never
reused. This module is pure (no ComfyUI): the node layer decides where the directory is.

It also holds the per-process spend counter behind ``WAVESPEED_SESSION_BUDGET_USD``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from . import errors as E

log = logging.getLogger("wavespeed")

ENV_JOURNAL_DIR = "WAVESPEED_JOURNAL_DIR"
ENV_SESSION_BUDGET = "WAVESPEED_SESSION_BUDGET_USD"
RETENTION_S = 7 * 86400  # WaveSpeed keeps predictions and their outputs for 7 days
SCHEMA_VERSION = 1

STATUS_IN_FLIGHT = "in_flight"
STATUS_COMPLETED = "completed"
STATUS_FAILED = "failed"
STATUS_EXPIRED = "expired"  # the server no longer knows the task (older than 7 days, or another account)
STATUSES = (STATUS_IN_FLIGHT, STATUS_COMPLETED, STATUS_FAILED, STATUS_EXPIRED)

_HASH_EXCLUDED = frozenset({"enable_sync_mode"})  # how we wait, not what we get
_KEY_LIKE = re.compile(r"(^|[_-])(api[_-]?key|key|token|secret|password|authorization|bearer)$", re.I)
_DATA_URI_KEEP = 256  # a data: URI longer than this is stored as a short summary (the hash uses it whole)
_STALE_TMP_S = 3600.0
_PRUNE_EVERY_S = 3600.0
_PRUNE_MAX_FILES = 5000


def _check_id(request_id: str) -> str:
    rid = (request_id or "").strip() if isinstance(request_id, str) else ""
    if not rid or len(rid) > 128 or not all(c.isalnum() or c in "-_" for c in rid):
        raise ValueError(f"{request_id!r} is not a request id (letters, digits, '-' and '_' only)")
    return rid


def _assert_no_key(value: object, where: str = "params") -> None:
    """Refuse to journal anything with a key-like field: the journal must never hold a secret."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if isinstance(k, str) and _KEY_LIKE.search(k):
                raise ValueError(f"refusing to journal {where}.{k}: key-like fields are never stored")
            _assert_no_key(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _assert_no_key(v, f"{where}[{i}]")


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def params_hash(model: str, params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of model + params (minus transport-only fields like sync mode).
    Two tasks with the same hash and a fixed seed produce the same image."""
    kept = {k: v for k, v in params.items() if k not in _HASH_EXCLUDED}
    return hashlib.sha256(_canonical({"model": model, "params": kept}).encode("utf-8")).hexdigest()


def account_tag(base_url: str, api_key: str) -> str:
    """A one-way tag of (base URL, key): results are only reused where they can be fetched.
    16 hex characters of a salted sha256 reveal nothing about the key."""
    digest = hashlib.sha256(f"wavespeed-journal\n{base_url}\n{api_key}".encode()).hexdigest()
    return digest[:16]


def _storable(value: Any) -> Any:
    """Params as stored: long data: URIs (inline images) become a short summary; the rest is kept."""
    if isinstance(value, str) and value.startswith("data:") and len(value) > _DATA_URI_KEEP:
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
        return f"<{value.split(',', 1)[0][:40]} · {len(value)} chars · sha256 {digest}>"
    if isinstance(value, Mapping):
        return {str(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


@dataclass(frozen=True)
class TaskRecord:
    """One journaled task. ``to_json``/``from_json`` are the on-disk form."""

    request_id: str
    model: str
    params_hash: str
    submitted_at: float
    params: dict[str, Any] = field(default_factory=dict)
    account: str = ""
    status: str = STATUS_IN_FLIGHT
    server_status: str = ""
    updated_at: float = 0.0
    outputs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    price_usd: float = 0.0
    error: str = ""
    note: str = ""
    inference_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "request_id": self.request_id,
            "model": self.model,
            "params": self.params,
            "params_hash": self.params_hash,
            "account": self.account,
            "submitted_at": self.submitted_at,
            "updated_at": self.updated_at,
            "status": self.status,
            "server_status": self.server_status,
            "outputs": list(self.outputs),
            "files": list(self.files),
            "price_usd": self.price_usd,
            "error": self.error,
            "note": self.note,
            "inference_ms": self.inference_ms,
        }

    @classmethod
    def from_json(cls, data: object) -> TaskRecord:
        """Parse a stored record; ValueError if it is not one."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            status = str(data.get("status") or STATUS_IN_FLIGHT)
            inference = data.get("inference_ms")
            params = data.get("params") or {}
            return cls(
                request_id=_check_id(str(data["request_id"])),
                model=str(data["model"]),
                params_hash=str(data["params_hash"]),
                submitted_at=float(data["submitted_at"]),
                params=params if isinstance(params, dict) else {},
                account=str(data.get("account") or ""),
                status=status if status in STATUSES else STATUS_IN_FLIGHT,
                server_status=str(data.get("server_status") or ""),
                updated_at=float(data.get("updated_at") or 0.0),
                outputs=tuple(str(o) for o in data.get("outputs") or ()),
                files=tuple(str(f) for f in data.get("files") or ()),
                price_usd=float(data.get("price_usd") or 0.0),
                error=str(data.get("error") or ""),
                note=str(data.get("note") or ""),
                inference_ms=int(inference) if isinstance(inference, (int, float)) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed task record ({exc})") from None

    @property
    def prompt(self) -> str:
        value = self.params.get("prompt")
        return value if isinstance(value, str) else ""

    def prompt_snippet(self, limit: int = 48) -> str:
        flat = " ".join(self.prompt.split())
        return flat if len(flat) <= limit else flat[: limit - 1] + "…"


_UPDATABLE = frozenset(f.name for f in fields(TaskRecord)) - {"request_id", "params_hash", "submitted_at"}


class Journal:
    """The on-disk journal in ``directory``. Safe to share between threads; several processes may
    write the same directory (each record is replaced whole, never partially)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser()
        self.tasks_dir = self.directory / "tasks"
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[tuple[int, int, int], TaskRecord]] = {}
        self._last_prune = 0.0

    def __repr__(self) -> str:
        return f"Journal({str(self.directory)!r})"

    # ------------------------------------------------------------------ writing

    def record_submitted(
        self,
        request_id: str,
        *,
        model: str,
        params: Mapping[str, Any],
        price_usd: float,
        account: str = "",
        status: str = STATUS_IN_FLIGHT,
        server_status: str = "",
        outputs: Iterable[str] = (),
        error: str = "",
        submitted_at: float | None = None,
        identity_hash: str | None = None,
    ) -> TaskRecord:
        """Write the record of a task the server just accepted (before anyone waits on it).
        ``identity_hash`` replaces params_hash(model, params) where the caller knows a more stable
        identity (uploaded images by content rather than by their per-upload URL)."""
        _assert_no_key(params)
        now = time.time()
        record = TaskRecord(
            request_id=_check_id(request_id),
            model=model,
            params=_storable(dict(params)),
            params_hash=identity_hash or params_hash(model, params),
            account=account,
            submitted_at=now if submitted_at is None else float(submitted_at),
            updated_at=now,
            status=_check_status(status),
            server_status=server_status,
            outputs=_urls_only(outputs),
            price_usd=float(price_usd),
            error=error,
        )
        with self._lock:
            self._write(record)
        self.maybe_prune()
        return record

    def update(self, request_id: str, **changes: Any) -> TaskRecord | None:
        """Change fields of an existing record (None if there is none); updated_at is set for you."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update record field(s): {', '.join(sorted(unknown))}")
        if "status" in changes:
            _check_status(changes["status"])
        if "outputs" in changes:
            changes["outputs"] = _urls_only(changes["outputs"])
        if "files" in changes:
            changes["files"] = tuple(str(f) for f in changes["files"])
        if "params" in changes:
            _assert_no_key(changes["params"])
            changes["params"] = _storable(dict(changes["params"]))
        with self._lock:
            current = self.get(request_id)
            if current is None:
                return None
            changes.setdefault("updated_at", time.time())
            record = replace(current, **changes)
            self._write(record)
            return record

    def _path(self, request_id: str) -> Path:
        return self.tasks_dir / f"{_check_id(request_id)}.json"

    def _write(self, record: TaskRecord) -> None:
        self.tasks_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Last line of defence: a registered secret (the API key) never reaches the disk.
        text = E.redact(json.dumps(record.to_json(), ensure_ascii=False, indent=1, allow_nan=False))
        path = self._path(record.request_id)
        import tempfile  # only needed when writing; keeps the pack's import fast

        fd, tmp = tempfile.mkstemp(prefix=f".{record.request_id}.", suffix=".tmp", dir=self.tasks_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.tasks_dir)

    # ------------------------------------------------------------------ reading

    def get(self, request_id: str) -> TaskRecord | None:
        try:
            path = self._path(request_id)
        except ValueError:
            return None
        return _read(path)

    def _all(self) -> list[TaskRecord]:
        """Every readable record; unchanged files are served from a small stat-validated cache."""
        try:
            entries = list(os.scandir(self.tasks_dir))
        except FileNotFoundError:
            return []
        records: list[TaskRecord] = []
        seen: set[str] = set()
        with self._lock:
            for entry in entries:
                if entry.name.startswith(".") or not entry.name.endswith(".json"):
                    continue
                try:
                    st = entry.stat()
                except OSError:
                    continue
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                seen.add(entry.name)
                cached = self._cache.get(entry.name)
                if cached is not None and cached[0] == stamp:
                    records.append(cached[1])
                    continue
                record = _read(Path(entry.path))
                if record is not None:
                    self._cache[entry.name] = (stamp, record)
                    records.append(record)
            for name in set(self._cache) - seen:
                del self._cache[name]
        return records

    def recent(self, limit: int = 50, statuses: Iterable[str] | None = None) -> list[TaskRecord]:
        """Newest first; optionally only the given statuses."""
        wanted = None if statuses is None else frozenset(statuses)
        rows = [r for r in self._all() if wanted is None or r.status in wanted]
        rows.sort(key=lambda r: (r.submitted_at, r.request_id), reverse=True)
        return rows[: max(0, limit)]

    def in_flight(self) -> list[TaskRecord]:
        return self.recent(limit=10**9, statuses=(STATUS_IN_FLIGHT,))

    def find_completed(
        self,
        params_hash: str,
        max_age_s: float = RETENTION_S,
        *,
        account: str | None = None,
        now: float | None = None,
        statuses: Iterable[str] = (STATUS_COMPLETED,),
    ) -> TaskRecord | None:
        """The newest task with these params in one of ``statuses``, younger than max_age_s."""
        cutoff = (time.time() if now is None else now) - max_age_s
        for record in self.recent(limit=10**9, statuses=statuses):
            if record.submitted_at < cutoff:
                return None  # newest first: everything after is older still
            if record.params_hash == params_hash and (account is None or record.account == account):
                return record
        return None

    # ------------------------------------------------------------------ housekeeping

    def prune(
        self, now: float | None = None, retention_s: float = RETENTION_S, max_files: int = _PRUNE_MAX_FILES
    ) -> int:
        """Delete records submitted more than retention_s ago (their results are gone from the API)
        and temporary files left by a crash. Looks at no more than max_files entries per call."""
        now = time.time() if now is None else now
        removed = 0
        try:
            entries = list(os.scandir(self.tasks_dir))[:max_files]
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.name.endswith(".tmp"):
                    if entry.stat().st_mtime < now - _STALE_TMP_S:
                        os.unlink(entry.path)
                    continue
                if not entry.name.endswith(".json"):
                    continue
                record = _read(Path(entry.path))
                if record is not None and record.submitted_at < now - retention_s:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        if removed:
            log.info("WaveSpeed journal: pruned %d task record(s) older than the 7-day retention", removed)
        return removed

    def maybe_prune(self) -> None:
        """Prune at most once an hour per process; never fails the caller."""
        now = time.time()
        if now - self._last_prune < _PRUNE_EVERY_S:
            return
        self._last_prune = now
        try:
            self.prune(now)
        except Exception:
            log.debug("journal prune failed", exc_info=True)


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"unknown task status {status!r}; use one of {', '.join(STATUSES)}")
    return status


def _urls_only(outputs: Iterable[str]) -> tuple[str, ...]:
    return tuple(o for o in outputs if isinstance(o, str) and o.startswith(("http://", "https://")))


def _read(path: Path) -> TaskRecord | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return TaskRecord.from_json(json.load(fh))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("WaveSpeed journal: skipping unreadable record %s (%s)", path.name, exc)
        return None


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); best effort elsewhere."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def default_journal_dir(
    comfy_user_dir: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Path:
    """``$WAVESPEED_JOURNAL_DIR``, else ComfyUI's user directory, else ``~/.cache``; never a workflow."""
    env = os.environ if env is None else env
    override = (env.get(ENV_JOURNAL_DIR) or "").strip()
    if override:
        return Path(override).expanduser()
    if comfy_user_dir:
        return Path(comfy_user_dir) / "wavespeed" / "journal"
    return Path("~/.cache/wavespeed-kontext/journal").expanduser()


# ---------------------------------------------------------------------- session budget


def session_budget_usd(env: Mapping[str, str] | None = None) -> float | None:
    """The per-session budget from ``WAVESPEED_SESSION_BUDGET_USD`` (None when unset)."""
    env = os.environ if env is None else env
    raw = (env.get(ENV_SESSION_BUDGET) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw.lstrip("$"))
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise E.ConfigError(
            f"{ENV_SESSION_BUDGET}={raw!r} is not an amount of US dollars: set it to e.g. 5 or 2.50, "
            "or unset it for no budget."
        )
    return value


class SessionSpend:
    """What this process has committed to paying (accepted submissions); thread-safe.

    ``reserve`` checks and books the price in one step before the request is sent, so concurrent
    submits cannot jointly overshoot the budget; ``release`` gives it back when the server
    provably did not accept the task."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent = 0.0

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent

    def reserve(self, price_usd: float, budget_usd: float | None) -> float:
        """Book ``price_usd``; raise BudgetExceededError (booking nothing) if it would cross the budget."""
        with self._lock:
            total = round(self._spent + price_usd, 6)
            if budget_usd is not None and total > budget_usd + 1e-9:
                raise E.BudgetExceededError(
                    f"This task (${price_usd:.2f}) would bring this session's WaveSpeed spend to "
                    f"${total:.2f}, over the ${budget_usd:.2f} budget ({ENV_SESSION_BUDGET}): raise the "
                    "budget or restart ComfyUI to reset it."
                )
            self._spent = total
            return total

    def release(self, price_usd: float) -> None:
        with self._lock:
            self._spent = max(0.0, round(self._spent - price_usd, 6))

    def reset(self) -> None:
        with self._lock:
            self._spent = 0.0
