"""Reading CSV files: encoding, dialect and header detection, a streaming record reader, type guesses.

Nothing here touches the database. Files are read from disk in chunks, so memory stays flat
whatever the file's size.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO

from charset_normalizer import from_bytes

from morket.core.text import plural
from morket.tables.cells import CellError, parse_cell

SAMPLE_BYTES = 64 * 1024
PREVIEW_ROWS = 20
TYPE_SAMPLE_ROWS = 200
DELIMITERS = ",;\t|"
# The largest single field the reader accepts; longer cells are refused by their column's type,
# but the reader must get past them to report the line rather than stop.
MAX_FIELD_CHARS = 16 * 1024 * 1024
MAX_COLUMNS = 1000
# Ragged lines named in a warning; the error file lists every one of them.
RAGGED_SHOWN = 10
# The encodings a CSV file is read in, by Python codec name: what detection may pick and what the
# user may choose instead. Older and rarer code pages (Latin-3, Latin-4, Nordic …) are left out on
# purpose: on a short sample they decode Polish or Czech as plausibly as Latin-2 does, wrongly.
ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 (with BOM)",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16 LE",
    "utf-16-be": "UTF-16 BE",
    "cp1252": "Windows-1252 (Western European)",
    "iso8859_15": "ISO-8859-15 (Latin-9)",
    "cp1250": "Windows-1250 (Central European)",
    "iso8859_2": "ISO-8859-2 (Latin-2, Central European)",
    "cp1251": "Windows-1251 (Cyrillic)",
    "koi8_r": "KOI8-R (Russian)",
    "koi8_u": "KOI8-U (Ukrainian)",
    "iso8859_5": "ISO-8859-5 (Cyrillic)",
    "cp866": "DOS 866 (Cyrillic)",
    "cp1253": "Windows-1253 (Greek)",
    "iso8859_7": "ISO-8859-7 (Greek)",
    "cp1254": "Windows-1254 (Turkish)",
    "iso8859_9": "ISO-8859-9 (Turkish)",
    "cp1255": "Windows-1255 (Hebrew)",
    "cp1256": "Windows-1256 (Arabic)",
    "cp1257": "Windows-1257 (Baltic)",
    "iso8859_13": "ISO-8859-13 (Baltic)",
    "cp1258": "Windows-1258 (Vietnamese)",
    "cp874": "Windows-874 (Thai)",
    "mac_roman": "Mac Roman",
    "cp437": "DOS 437 (US)",
    "cp850": "DOS 850 (Western European)",
    "cp932": "Shift-JIS (Japanese, Windows)",
    "shift_jis": "Shift-JIS (Japanese)",
    "euc_jp": "EUC-JP (Japanese)",
    "gb18030": "GB18030 (Chinese, simplified)",
    "gbk": "GBK (Chinese, simplified)",
    "big5": "Big5 (Chinese, traditional)",
    "cp949": "Windows-949 (Korean)",
    "euc_kr": "EUC-KR (Korean)",
}
_DETECTABLE = [name for name in ENCODING_LABELS if not name.startswith(("utf-8", "utf-16"))]
# Characters that sit next to letters in real text although they are not letters themselves.
_WORD_PUNCTUATION = frozenset("’‘·'´`-")

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


def _oddities(text: str) -> int:
    """Count what a wrong code page leaves in words: C1 controls, and symbols touching a letter."""
    count = 0
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch < "\x80":
            continue
        category = unicodedata.category(ch)
        if category == "Cc" or (
            category[0] not in "LM"
            and ch not in _WORD_PUNCTUATION
            and ((i > 0 and text[i - 1].isalpha()) or (i < last and text[i + 1].isalpha()))
        ):
            count += 1
    return count


def _guess_legacy_encoding(sample: bytes) -> str:
    """Return the most likely legacy code page of a sample that is not UTF-8 (cp1252 when unsure).

    charset-normalizer ranks the candidates; on short samples it can rank a code page that turns
    Polish "ś" into "¶" first, so the candidate that leaves the fewest symbols inside words wins,
    and among candidates that read the sample identically the more common code page is named.
    """
    # A cut multi-byte character at the end would rule its encoding out: end at a line break
    # (0x0A is never the second byte of a Shift-JIS, EUC, GBK or Big5 character).
    cut = sample.rfind(b"\n")
    if cut > 0:
        sample = sample[: cut + 1]
    matches = list(from_bytes(sample, cp_isolation=_DETECTABLE))
    if not matches:
        return "cp1252"
    texts = [str(m) for m in matches]
    best = min(range(len(matches)), key=lambda k: (_oddities(texts[k]), k))
    same = [matches[k].encoding for k in range(len(matches)) if texts[k] == texts[best]]
    return min(same, key=_DETECTABLE.index)


def detect_encoding(sample: bytes) -> str:
    """Return the codec of a file from its first bytes: BOMs, UTF-16 by NULs, UTF-8, else a legacy code page."""
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
        return _guess_legacy_encoding(sample)
    return "utf-8"


def open_text(path: Path, encoding: str) -> IO[str]:
    """Open ``path`` for the csv module: decoded as ``encoding``, newlines left to the reader."""
    errors = "morket-latin1" if encoding == "cp1252" else "strict"
    return open(path, encoding=encoding, errors=errors, newline="")  # the caller closes it


@dataclass
class Sniffed:
    """What the file looks like: its format, header and first rows."""

    encoding: str
    delimiter: str
    has_header: bool
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    ragged: list[tuple[int, int]] = field(default_factory=list)
    rows_checked: int = 0
    more_rows: bool = False

    @property
    def encoding_label(self) -> str:
        return ENCODING_LABELS.get(self.encoding, self.encoding)

    @property
    def warning(self) -> str | None:
        """The preview's warning about rows with more or fewer values than the header."""
        lines = [line for line, _ in self.ragged]
        checked = self.rows_checked if self.more_rows else None
        return ragged_warning(len(self.header), lines, len(lines), checked_rows=checked)

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


def _all_parse(column_type: str, values: list[str]) -> bool:
    try:
        for value in values:
            parse_cell(column_type, {}, value)
    except CellError:
        return False
    return True


def guess_type(values: list[str]) -> str:
    """Return the type of a column from sample values (blanks ignored), else text.

    Numbers and dates only in their plain forms; checkbox, email, domain and URL when every value
    passes that type's own parser (``tables.cells``), the one that types cells in the grid. Bare
    host names are domains, unless one starts with ``www.`` (the domain type would drop it):
    anything with a scheme, a path or a ``www.`` is a URL.
    """
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
    if _all_parse("checkbox", filled):
        return "checkbox"
    if all("@" in v for v in filled):
        return "email" if _all_parse("email", filled) else "text"
    bare = not any("/" in v or ":" in v or v.lower().startswith("www.") for v in filled)
    if bare and _all_parse("domain", filled):
        return "domain"
    if _all_parse("url", filled):
        return "url"
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


def sniff(path: Path, encoding: str | None = None) -> Sniffed:
    """Detect encoding (unless given), delimiter and header; read the first rows with guessed types.

    Rows whose number of values differs from the header's are listed with their lines (``ragged``)
    and shown cut or padded to the header's width.
    """
    with open(path, "rb") as raw:
        sample = raw.read(SAMPLE_BYTES)
    if not sample.strip(b"\x00\r\n\t \xef\xbb\xbf\xff\xfe"):
        raise CsvError("The file is empty. Upload a CSV with a header row and at least one row of data.")
    encoding = encoding or detect_encoding(sample)
    try:
        with open_text(path, encoding) as handle:
            text = handle.read(SAMPLE_BYTES)
    except UnicodeDecodeError as exc:
        raise _decode_problem(exc, encoding) from exc
    delimiter = detect_delimiter(text)
    rows: list[list[str]] = []
    lines: list[int] = []
    more_rows = False
    try:
        with open_text(path, encoding) as handle:
            reader = _reader(handle, delimiter)
            line = 1
            for row in reader:
                start, line = line, reader.line_num + 1
                if len(rows) > TYPE_SAMPLE_ROWS:
                    more_rows = True
                    break
                if row and not (len(row) == 1 and not row[0]):
                    rows.append(row)
                    lines.append(start)
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
    body, body_lines = (rows[1:], lines[1:]) if has_header else (rows, lines)
    width = len(header)
    ragged = [(line, len(row)) for line, row in zip(body_lines, body, strict=True) if len(row) != width]
    types = [guess_type([r[i] for r in body if len(r) == width]) for i in range(width)]
    shown = [(row + [""] * width)[:width] for row in body[:PREVIEW_ROWS]]
    return Sniffed(
        encoding,
        delimiter,
        has_header,
        header,
        shown,
        types,
        lines=body_lines[:PREVIEW_ROWS],
        ragged=ragged,
        rows_checked=len(body),
        more_rows=more_rows,
    )


def ragged_warning(width: int, lines: list[int], total: int, *, checked_rows: int | None = None) -> str | None:
    """Say which lines do not have the header's number of values (None when none).

    ``lines`` are the first such lines, ``total`` how many there are; ``checked_rows`` says that
    only that many rows of a longer file were looked at.
    """
    if not total:
        return None
    shown = [f"{line:,}" for line in lines[:RAGGED_SHOWN]]
    named = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    if total > len(shown):
        named += f" (and {plural(total - len(shown), 'more line')})"
    subject = f"Line {named} does" if total == 1 else f"Lines {named} do"
    message = f"{subject} not have {plural(width, 'value')} like the header row."
    if checked_rows is not None:
        message += f" Only the first {plural(checked_rows, 'row')} were checked here; the import checks every line."
    return message


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
