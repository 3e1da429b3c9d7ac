"""Every record of a channel through the gateway, for tests that compare whole channels (the solver only ever
looks names up)."""

from __future__ import annotations

from typing import Sequence

import requests

from oci_conda.conda.channel import Channel
from oci_conda.conda.gateway import ChannelIndex, load_channel_indexes
from oci_conda.conda.records import PackageRecord
from oci_conda.conda.subdir import open_whole
from oci_conda.errors import ChannelError


def all_records(index: ChannelIndex) -> list[PackageRecord]:
    """Each name's records, names in index order (every entry made and validated)."""
    return [r for name in index for r in index[name]]


def records_of_channels(channels: Sequence[Channel], subdir: str, session: requests.Session, *,
                    offline: bool = False, names: Sequence[str] | None = None) -> list[list[PackageRecord]]:
    """Per channel every record of ``subdir`` + ``noarch``."""
    return [all_records(ix) for ix in load_channel_indexes(channels, subdir, session, offline=offline, names=names)]


def subdir_records(channel: Channel, subdir: str, session: requests.Session, *,
                   offline: bool = False) -> list[PackageRecord]:
    """Every record of one channel subdir from its whole repodata; a missing subdir is a ChannelError."""
    src = open_whole(channel, subdir, session, offline)
    if src is None:
        raise ChannelError(f"channel {channel.url} has no repodata for {subdir} at {channel.subdir_url(subdir)}/")
    return all_records(ChannelIndex(channel, [src]))
