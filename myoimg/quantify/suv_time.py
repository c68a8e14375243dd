"""DICOM date/time parsing for SUV decay computations (exact to the microsecond).

Only the subset needed by :mod:`myoimg.quantify.suv`: DA (``YYYYMMDD``), TM
(``HHMMSS.FFFFFF`` with optional trailing components; the legacy ``HH:MM:SS``
form is accepted) and DT (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``). Values come back as
naive :class:`datetime.datetime` in the local time of the acquisition: DICOM
times without an offset are local, and an explicit DT offset is converted to the
dataset's TimezoneOffsetFromUTC (0008,0201) when that is given, else dropped
(all times of one examination share one local time zone).
"""

from __future__ import annotations

import datetime as _dt
import re

__all__ = ["parse_da", "parse_tm", "parse_dt", "combine_da_tm"]

_TM_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?$")
_DA_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DT_RE = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?$"
)
_OFFSET_RE = re.compile(r"^([+-])(\d{2})(\d{2})$")


def _text(value) -> str:
    """DICOM string value (str, bytes from an UN element, pydicom DA/TM/DT) stripped."""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip().strip("\x00").strip()


def _micro(frac: str | None) -> int:
    # "5" means 0.5 s: right-pad to six digits.
    return int((frac or "").ljust(6, "0")) if frac else 0


def parse_tm(value) -> _dt.time:
    """Parse a DICOM TM value; raises ValueError when malformed.

    Fractional seconds are kept to the microsecond; a leap second (60) is
    clamped to 59.999999 s.
    """
    text = _text(value)
    if ":" in text:  # ACR-NEMA style HH:MM:SS(.frac)
        text = text.replace(":", "")
    m = _TM_RE.match(text)
    if not m:
        raise ValueError(f"not a DICOM TM: {text!r}")
    hh, mm, ss, frac = m.groups()
    hour, minute, second = int(hh), int(mm or 0), int(ss or 0)
    micro = _micro(frac)
    if second == 60:
        second, micro = 59, 999999
    return _dt.time(hour, minute, second, micro)


def parse_da(value) -> _dt.date:
    """Parse a DICOM DA value (``YYYYMMDD``; legacy ``YYYY.MM.DD`` accepted)."""
    text = _text(value).replace(".", "").replace("-", "")
    m = _DA_RE.match(text)
    if not m:
        raise ValueError(f"not a DICOM DA: {text!r}")
    return _dt.date(int(m[1]), int(m[2]), int(m[3]))


def _offset(text: str) -> _dt.timedelta:
    m = _OFFSET_RE.match(_text(text))
    if not m:
        raise ValueError(f"not a UTC offset: {text!r}")
    sign = -1 if m[1] == "-" else 1
    return sign * _dt.timedelta(hours=int(m[2]), minutes=int(m[3]))


def parse_dt(value, local_offset=None) -> _dt.datetime:
    """Parse a DICOM DT value to a naive local datetime.

    Parameters
    ----------
    value : str or bytes
        ``YYYYMMDDHHMMSS.FFFFFF&ZZXX``; trailing components may be omitted.
    local_offset : str, optional
        TimezoneOffsetFromUTC (``&ZZXX``) of the dataset. When both it and an
        offset in ``value`` are given, the time is converted to local time;
        otherwise an offset in ``value`` is dropped.
    """
    text = _text(value)
    m = _DT_RE.match(text)
    if not m:
        raise ValueError(f"not a DICOM DT: {text!r}")
    y, mo, d, h, mi, s, frac, off = m.groups()
    second = int(s or 0)
    micro = _micro(frac)
    if second == 60:
        second, micro = 59, 999999
    result = _dt.datetime(
        int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), second, micro
    )
    if off and local_offset:
        result = result - _offset(off) + _offset(local_offset)
    return result


def combine_da_tm(da, tm) -> _dt.datetime:
    """Naive datetime from a DA and a TM value."""
    return _dt.datetime.combine(parse_da(da), parse_tm(tm))
