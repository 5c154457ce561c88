"""The options that say how the input lists are read (``--input-format``, ``--url-column``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from urlfleet.read.formats import INPUT_FORMATS
from urlfleet.read.sources import InputProblem, UrlReader


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """The input options, in a group of their own."""
    inputs = parser.add_argument_group("input lists")
    inputs.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        metavar="FORMAT",
        help="read every FILE as FORMAT: lines (one URL a line), jsonl (one JSON object a "
        "line: url, method, headers, data, meta, etag, last_modified; other keys join meta), "
        "csv or tsv (a header row; the URL column, the other columns into meta), or sitemap "
        "(an XML sitemap or sitemap index, plain or gzipped; a FILE may then be an http(s) "
        "URL, fetched politely like any request, as a URL ending in .xml or .xml.gz always "
        "is). Default: by extension, .jsonl/.ndjson, "
        ".csv, .tsv, .xml/.xml.gz; anything else (and stdin) is lines",
    )
    inputs.add_argument(
        "--url-column",
        default="url",
        metavar="NAME",
        help="the CSV/TSV column holding the URL (default %(default)s)",
    )


def reader_from(args: argparse.Namespace, on_problem: Callable[[InputProblem], None]) -> UrlReader:
    """The reader of the FILE arguments, as the input options say."""
    return UrlReader(
        args.files,
        on_problem=on_problem,
        input_format=args.input_format,
        url_column=args.url_column,
    )
