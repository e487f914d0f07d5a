"""The checks every ZIP-based Office package passes before a parser unpacks it.

DOCX, XLSX and PPTX are ZIP archives; a zip bomb is refused from the sizes in the ZIP
directory, before anything is unpacked (zipfile never reads past a member's declared size, so
the declared sizes are a real bound).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from docworkers.errors import CorruptDocumentError, DocumentTooLargeError
from docworkers.ingest.parsing._common import megabytes, summary
from docworkers.ingest.parsing.limits import ParseLimits

MAX_ZIP_MEMBERS = 10_000


def check_package(
    path: Path, filename: str, limits: ParseLimits, *, label: str, required: str, repair: str
) -> tuple[zipfile.ZipFile, dict[str, zipfile.ZipInfo]]:
    """Open the package at ``path`` and return it with its members by name.

    ``label`` names the format in messages ("DOCX"), ``required`` is the part the format cannot
    do without ("word/document.xml") and ``repair`` tells the user what to do about damage.
    Raises DocumentTooLargeError for too many parts or too many unpacked bytes, and
    CorruptDocumentError for a damaged archive or a missing ``required`` part. The caller
    closes the returned archive.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError) as exc:
        raise CorruptDocumentError(
            filename, f"the {label} file's ZIP structure is damaged ({summary(exc)}). {repair}"
        ) from None
    try:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise DocumentTooLargeError(
                filename,
                f"the {label} package holds {len(members)} parts, more than the "
                f"{MAX_ZIP_MEMBERS} allowed; it is not a normal {label} file.",
            )
        unpacked = sum(member.file_size for member in members)
        if unpacked > limits.max_file_bytes:
            raise DocumentTooLargeError(
                filename,
                f"the {label} file unpacks to {megabytes(unpacked)}, more than the "
                f"{megabytes(limits.max_file_bytes)} limit (a 'zip bomb' looks like this). "
                "Split the document into smaller files.",
            )
        names = {member.filename: member for member in members}
        if required not in names:
            raise CorruptDocumentError(
                filename,
                f"the file is a ZIP archive but not a {label} file (no {required}). {repair}",
            )
    except BaseException:
        archive.close()
        raise
    return archive, names
