"""Secrets that change are taken without a restart (``gateway.credentials``).

Every ``credentials.watch_seconds`` the referenced files are checked (inode, mtime, size:
a Kubernetes secret update swaps a symlink, which changes all three), and every
``credentials.refresh_seconds`` the Vault secrets' versions; on a change the
configuration file is read again whole. When it is valid, each connector whose resolved
options changed is swapped in the running process (webhooks and push from the next
request, pollers from their next poll); connectors added start, connectors removed stop
(their URL answers 404 from then on). When it is not valid, its problems are logged and
the running configuration stays until the next change. Settings outside the connectors
need a restart. Every worker process watches on its own, so all of them switch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from connectors.base import Connector
from gateway.config import LoadedConfig, load_config
from gateway.credentials import fingerprint
from gateway.errors import ConfigError

log = structlog.get_logger(__name__)

# (the new configuration, the connectors added or changed, the ids removed)
Apply = Callable[[LoadedConfig, dict[str, Connector[Any]], list[str]], Awaitable[None]]


class Reloader:
    def __init__(self, loaded: LoadedConfig, apply: Apply,
                 requested: Callable[[], float] | None = None) -> None:
        self.loaded = loaded
        self.apply = apply
        self.requested = requested  # when a reload was last asked for (gateway.admin)
        self._asked = requested() if requested is not None else 0.0
        self._vault_checked = time.monotonic()
        self._lock = asyncio.Lock()  # one reload at a time (the loop, the admin API)

    @property
    def watching(self) -> bool:
        c = self.loaded.credentials
        return self.loaded.path is not None and c is not None and (
            bool(c.files or c.secrets) or self.requested is not None)

    async def run(self) -> None:
        """The watch loop (run under ``gateway.tasks.supervised``)."""
        settings = self.loaded.settings.credentials
        while True:
            await asyncio.sleep(settings.watch_seconds)
            if await asyncio.to_thread(self._changed, settings.refresh_seconds):
                await self.reload()

    def _changed(self, refresh_seconds: float) -> bool:
        resolver = self.loaded.credentials
        if resolver is None:
            return False
        if resolver.files_changed():
            return True
        if self.requested is not None and (asked := self.requested()) != self._asked:
            self._asked = asked
            return True
        if time.monotonic() - self._vault_checked >= refresh_seconds:
            self._vault_checked = time.monotonic()
            return resolver.vault_changed()
        return False

    async def reload(self) -> list[str]:
        """Reads the configuration again and swaps the changed connectors: their ids. It
        answers every reload asked for until now: the watch loop does not redo them (it
        would otherwise take a later change of the file before the caller's next reload
        could report it)."""
        async with self._lock:
            if self.requested is not None:
                self._asked = await asyncio.to_thread(self.requested)
            return await self._reload()

    async def _reload(self) -> list[str]:
        old = self.loaded
        assert old.path is not None
        assert old.credentials is not None
        try:
            new = await asyncio.to_thread(load_config, old.path, old.credentials.env)
        except ConfigError as exc:
            log.error("reload_refused", problems=[str(p) for p in exc.problems])
            files = old.credentials.files  # wait for the next change
            for path in files:
                files[path] = await asyncio.to_thread(fingerprint, path)
            return []
        changed = {cid: c for cid, c in new.connectors.items()
                   if cid not in old.connectors or type(c) is not type(old.connectors[cid])
                   or c.config != old.connectors[cid].config
                   or new.settings.connectors[cid] != old.settings.connectors[cid]}
        removed = sorted(set(old.connectors) - set(new.connectors))
        for cid in changed:  # in dependency order: the new ones start before they serve
            await changed[cid].start()
        gone = [old.connectors[cid] for cid in [*changed, *removed] if cid in old.connectors]
        for cid, connector in changed.items():
            old.connectors[cid] = connector
            old.acls[cid] = new.acls[cid]
            if cid in new.policies:
                old.policies[cid] = new.policies[cid]
            else:
                old.policies.pop(cid, None)
        for cid in removed:
            del old.connectors[cid]
            old.acls.pop(cid, None)
            old.policies.pop(cid, None)
        entries = {cid: e for cid, e in old.settings.connectors.items() if cid not in removed}
        entries.update({cid: new.settings.connectors[cid] for cid in changed})
        old.settings = old.settings.model_copy(update={"connectors": entries})
        if changed or removed:
            await self.apply(new, changed, removed)
        for connector in gone:
            await connector.aclose()
        previous, old.credentials = old.credentials, new.credentials
        await asyncio.to_thread(previous.close)
        log.info("connectors_reloaded", connectors=sorted(changed), removed=removed)
        return sorted([*changed, *removed])
