"""Reading CSV files: encoding, dialect and header detection, a streaming record reader, type guesses.

Nothing here touches the database. Files are read from disk in chunks, so memory stays flat
whatever the file's size.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO

SAMPLE_BYTES = 64 * 1024
PREVIEW_ROWS = 20
TYPE_SAMPLE_ROWS = 200
DELIMITERS = ",;\t|"
# The largest single field the reader accepts; longer cells are refused by their column's type,
# but the reader must get past them to report the line rather than stop.
MAX_FIELD_CHARS = 16 * 1024 * 1024
MAX_COLUMNS = 1000
ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 (with BOM)",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16 LE",
    "utf-16-be": "UTF-16 BE",
    "cp1252": "Windows-1252",
}

# Only plain forms count as numbers and dates: a zip code like 08123 or a value like 1,000 stays
# text, so what goes in comes back out unchanged.
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9]\d{0,14})(?:\.\d{1,12})?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class CsvError(ValueError):
    """The file cannot be read as CSV; the message says why, for the user."""


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    # cp1252 leaves five bytes undefined; read them as Latin-1 (the C1 controls) rather than fail.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error("morket-latin1", _latin1_fallback)


def detect_encoding(sample: bytes) -> str:
    """Return the codec of a file from its first bytes: BOMs first, then UTF-8, UTF-16 by NULs, cp1252."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if len(sample) >= 4:
        even, odd = sample[0::2], sample[1::2]
        if odd.count(0) > len(odd) * 0.4 and even.count(0) < len(even) * 0.1:
            return "utf-16-le"
        if even.count(0) > len(even) * 0.4 and odd.count(0) < len(odd) * 0.1:
            return "utf-16-be"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def open_text(path: Path, encoding: str) -> IO[str]:
    """Open ``path`` for the csv module: decoded as ``encoding``, newlines left to the reader."""
    errors = "morket-latin1" if encoding == "cp1252" else "strict"
    return open(path, encoding=encoding, errors=errors, newline="")  # noqa: SIM115 - the caller closes it


@dataclass
class Sniffed:
    """What the file looks like: its format, header and first rows."""

    encoding: str
    delimiter: str
    has_header: bool
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    @property
    def encoding_label(self) -> str:
        return ENCODING_LABELS.get(self.encoding, self.encoding)

    @property
    def delimiter_label(self) -> str:
        return {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}[self.delimiter]

    def as_settings(self) -> dict[str, object]:
        return {"encoding": self.encoding, "delimiter": self.delimiter, "has_header": self.has_header}


def _field_counts(text: str, delimiter: str) -> list[int]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    counts = []
    try:
        for row in reader:
            counts.append(len(row))
            if len(counts) >= 20:
                break
    except csv.Error:
        return []
    return counts


def _consistent(counts: list[int]) -> bool:
    if not counts:
        return False
    body = counts[:-1] if len(counts) > 2 else counts  # the sample's last line may be cut short
    return body[0] > 1 and all(c == body[0] for c in body)


def detect_delimiter(text: str) -> str:
    """Return the delimiter: the Sniffer's pick when rows agree on it, else the most consistent one."""
    try:
        found = csv.Sniffer().sniff(text[:SAMPLE_BYTES], delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = None
    if found and _consistent(_field_counts(text, found)):
        return found
    best, best_score = ",", (False, 0)
    for candidate in DELIMITERS:
        counts = _field_counts(text, candidate)
        score = (_consistent(counts), counts[0] if counts else 0)
        if score > best_score:
            best, best_score = candidate, score
    return best


def _looks_like_data(value: str) -> bool:
    value = value.strip()
    return bool(_PLAIN_NUMBER.fullmatch(value) or _ISO_DATE.fullmatch(value))


def detect_header(text: str, first: list[str]) -> bool:
    """Whether the first row names the columns: distinct, non-empty names that do not look like data."""
    names = [v.strip() for v in first]
    if names and all(names) and len(set(names)) == len(names) and not any(_looks_like_data(v) for v in names):
        return True
    try:
        return csv.Sniffer().has_header(text[:SAMPLE_BYTES])
    except csv.Error:
        return False


def clean_header(raw: list[str]) -> list[str]:
    """Return usable column names: trimmed, control characters removed, blanks named, duplicates numbered."""
    names: list[str] = []
    seen: set[str] = set()
    for index, value in enumerate(raw, start=1):
        name = re.sub(r"[\x00-\x1f\x7f]", " ", value).strip()[:100] or f"Column {index}"
        base, n = name, 2
        while name.casefold() in seen:
            name = f"{base} ({n})"
            n += 1
        seen.add(name.casefold())
        names.append(name)
    return names


def guess_type(values: list[str]) -> str:
    """Return number, date or text for a column from sample values (blanks ignored)."""
    filled = [v.strip() for v in values if v.strip()]
    if not filled:
        return "text"
    if all(_PLAIN_NUMBER.fullmatch(v) for v in filled):
        return "number"
    if all(_ISO_DATE.fullmatch(v) for v in filled):
        try:
            for v in filled:
                date.fromisoformat(v)
        except ValueError:
            return "text"
        return "date"
    return "text"


def _reader(handle: IO[str], delimiter: str) -> Iterator[list[str]]:
    csv.field_size_limit(MAX_FIELD_CHARS)
    return csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)


def _decode_problem(exc: UnicodeDecodeError, encoding: str) -> CsvError:
    label = ENCODING_LABELS.get(encoding, encoding)
    return CsvError(
        f"The file is not valid {label} (an unreadable byte near byte {exc.start:,} of a block). "
        "Save it as UTF-8 CSV and upload it again."
    )


def sniff(path: Path) -> Sniffed:
    """Detect encoding, delimiter and header, and read the first rows with guessed column types."""
    with open(path, "rb") as raw:
        sample = raw.read(SAMPLE_BYTES)
    if not sample.strip(b"\x00\r\n\t \xef\xbb\xbf\xff\xfe"):
        raise CsvError("The file is empty. Upload a CSV with a header row and at least one row of data.")
    encoding = detect_encoding(sample)
    try:
        with open_text(path, encoding) as handle:
            text = handle.read(SAMPLE_BYTES)
    except UnicodeDecodeError as exc:
        raise _decode_problem(exc, encoding) from exc
    delimiter = detect_delimiter(text)
    rows: list[list[str]] = []
    try:
        with open_text(path, encoding) as handle:
            for row in _reader(handle, delimiter):
                if row:
                    rows.append(row)
                if len(rows) > TYPE_SAMPLE_ROWS:
                    break
    except UnicodeDecodeError as exc:
        raise _decode_problem(exc, encoding) from exc
    except csv.Error as exc:
        raise CsvError(f"The file could not be read as CSV: {exc}.") from exc
    if not rows:
        raise CsvError("The file is empty. Upload a CSV with a header row and at least one row of data.")
    if len(rows[0]) > MAX_COLUMNS:
        raise CsvError(f"The file has {len(rows[0]):,} columns; Morket reads at most {MAX_COLUMNS:,}.")
    has_header = detect_header(text, rows[0])
    header = clean_header(rows[0]) if has_header else [f"Column {i}" for i in range(1, len(rows[0]) + 1)]
    body = rows[1:] if has_header else rows
    types = [guess_type([r[i] for r in body if i < len(r)]) for i in range(len(header))]
    return Sniffed(encoding, delimiter, has_header, header, body[:PREVIEW_ROWS], types)


class RecordReader:
    """Read the records of a file in batches, with the line each starts on; ``bytes_read`` tracks progress."""

    def __init__(self, path: Path, encoding: str, delimiter: str, has_header: bool) -> None:
        self._path = path
        self._encoding = encoding
        self._delimiter = delimiter
        self._has_header = has_header
        self._handle: IO[str] | None = None

    @property
    def bytes_read(self) -> int:
        if self._handle is None or self._handle.closed:
            return 0
        return self._handle.buffer.tell()  # type: ignore[attr-defined]

    def batches(self, size: int) -> Iterator[tuple[list[int], list[list[str]]]]:
        """Yield up to ``size`` records at a time: the lines they start on and their fields."""
        with open_text(self._path, self._encoding) as handle:
            self._handle = handle
            reader = _reader(handle, self._delimiter)
            line = 1
            header_pending = self._has_header
            lines: list[int] = []
            rows: list[list[str]] = []
            try:
                for fields in reader:
                    start, line = line, reader.line_num + 1
                    if not fields or (len(fields) == 1 and not fields[0]):
                        continue
                    if header_pending:
                        header_pending = False
                        continue
                    lines.append(start)
                    rows.append(fields)
                    if len(rows) == size:
                        yield lines, rows
                        lines, rows = [], []
            except UnicodeDecodeError as exc:
                raise _decode_problem(exc, self._encoding) from exc
            except csv.Error as exc:
                raise CsvError(f"Line {line:,}: the file could not be read as CSV ({exc}).") from exc
            if rows:
                yield lines, rows


def write_csv_row(handle: IO[str], fields: list[object]) -> None:
    """Write one row in the export dialect (comma, minimal quoting, CRLF as RFC 4180 says)."""
    csv.writer(handle, lineterminator="\r\n").writerow(fields)
