"""Match the device names written in config.json to the devices the plugins found.

Configs name devices loosely ("rtx 4060", "v100") because the product strings NVML reports are long
and vary by driver and form factor ("NVIDIA GeForce RTX 4060 Laptop GPU", "Tesla V100-SXM2-16GB").
``program.devices`` pins a config name to one card by index or UUID when loose names are ambiguous
(two identical cards). Everything here is pure so the rule can be tested without hardware.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for hints: keeps this module free of plugin imports at run time
    from plugins.devices.Base_Class import DevicePlugin


def name_matches(config_name: str, candidate: str) -> bool:
    """True when every word of ``config_name`` occurs (case-insensitively) inside ``candidate``.

    Words rather than the whole string, so "rtx 4060" finds "NVIDIA GeForce RTX 4060 Laptop GPU"
    whatever sits between or around the words; substrings, so "v100" finds "Tesla V100-SXM2-16GB".
    An empty or blank config name matches nothing, so it can never grab an arbitrary device.
    """
    words = config_name.lower().split()
    if not words:
        return False
    haystack = candidate.lower()
    return all(word in haystack for word in words)


def _names_of(device: DevicePlugin) -> list[str]:
    """``match_names()`` as stripped strings; a plugin returning ints or None must not break matching."""
    try:
        names = device.match_names()
    except Exception:  # a broken plugin should not stop the other devices from resolving
        names = [device.device_name]
    return [str(n).strip() for n in names if n is not None and str(n).strip()]


def _explicit_device(target: str, devices: Sequence[DevicePlugin]) -> DevicePlugin | None:
    """The device one of whose match names equals ``target`` (an index "1" or a UUID "GPU-...").

    Exact (case-insensitive only because UUID hex case varies between tools), never the word rule:
    an explicit pin that names a missing card must stay unresolved rather than land on another card.
    """
    want = str(target).strip().lower()
    for device in devices:
        if any(name.lower() == want for name in _names_of(device)):
            return device
    return None


def _candidates(config_name: str, devices: Sequence[DevicePlugin]) -> list[DevicePlugin]:
    """Devices ``config_name`` may mean, best kind of match first.

    An exact name (device_name or any match name, so a config name "1" means GPU 1 rather than every
    "V100") beats the word rule, so "RTX 4060" does not drift to an "RTX 4060 Ti" listed first.
    """
    want = config_name.strip().lower()
    if not want:
        return []
    exact = [d for d in devices if d.device_name.strip().lower() == want]
    if not exact:
        exact = [d for d in devices if any(n.lower() == want for n in _names_of(d))]
    if exact:
        return exact
    return [d for d in devices if any(name_matches(config_name, n) for n in _names_of(d))]


def resolve_devices(
    config_names: Iterable[str],
    devices: Sequence[DevicePlugin],
    explicit: Mapping[str, str],
) -> dict[str, DevicePlugin | None]:
    """Map each config device name to one device instance (None when nothing matches).

    Explicit pins (``program.devices``) are resolved first, in a pass of their own, so a loosely named
    sibling cannot take the card a pin names. Loose names then take the first matching device not
    already claimed in this call, so two config names for two identical cards land on different
    cards; when every match is claimed, the first match is shared rather than leaving the name unmatched.
    """
    names = list(dict.fromkeys(config_names))  # keep order, drop repeats
    result: dict[str, DevicePlugin | None] = {}
    claimed: set[int] = set()

    for name in names:
        if name in explicit:
            device = _explicit_device(explicit[name], devices)
            result[name] = device
            if device is not None:
                claimed.add(id(device))

    for name in names:
        if name in explicit:
            continue
        matches = _candidates(name, devices)
        pick = next((d for d in matches if id(d) not in claimed), matches[0] if matches else None)
        result[name] = pick
        if pick is not None:
            claimed.add(id(pick))

    return {name: result[name] for name in names}
