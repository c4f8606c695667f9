"""Markers -> annotations: streamed in any split, the clean text and the indexes are the same."""

from __future__ import annotations

import random

from openai.types.responses.response_output_text import AnnotationFileCitation, AnnotationURLCitation

from rejoinder.tools.citations import CitationStream, Source, Sources, strip_markers


def _sources() -> Sources:
    s = Sources()
    s.add(Source("file", file_id="file-a", filename="handbook.pdf"))
    s.add(Source("url", url="https://example.org/sky", title="Why the sky is blue"))
    return s


def test_markers_become_annotations_pointing_into_the_clean_text() -> None:
    text, notes = strip_markers("The warranty lasts three years [1]. The sky is blue [2].", _sources())
    assert text == "The warranty lasts three years. The sky is blue."
    file_note, url_note = notes
    AnnotationFileCitation.model_validate(file_note)
    AnnotationURLCitation.model_validate(url_note)
    assert file_note["file_id"] == "file-a" and file_note["filename"] == "handbook.pdf"
    assert text[:file_note["index"]] == "The warranty lasts three years"
    assert text[url_note["start_index"]:url_note["end_index"]] == "The sky is blue"


def test_forms_models_write() -> None:
    for written in ("Three years [1].", "Three years[1].", "Three years [^1].", "Three years 【1】.",
                    "Three years 【1†source】.", "Three years [1, 2]."):
        text, notes = strip_markers(written, _sources())
        assert text == "Three years.", written
        assert notes[0]["file_id"] == "file-a" and notes[0]["index"] == len("Three years"), written


def test_numbers_no_result_has_stay_text() -> None:
    text, notes = strip_markers("Use a[3] and [7] but cite [1].", _sources())
    assert text == "Use a[3] and [7] but cite."
    assert len(notes) == 1


def test_without_sources_nothing_changes() -> None:
    text, notes = strip_markers("See [1] and [2].", Sources())
    assert text == "See [1] and [2]." and notes == []


def test_any_split_of_the_stream_gives_the_same_text_and_annotations() -> None:
    whole = "Blue skies [2]. The warranty [1] is 3 years [1,2]! An array a[0] and x [3] stay 【2】"
    expected = strip_markers(whole, _sources())
    rng = random.Random(7)
    for _ in range(200):
        stream = CitationStream(_sources())
        cuts = sorted(rng.sample(range(1, len(whole)), rng.randint(1, 12)))
        pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
        text, notes = "", []
        for piece in pieces:
            t, n = stream.feed(piece)
            text += t
            notes += n
        t, n = stream.flush()
        assert (text + t, notes + n) == expected


def test_a_held_back_tail_is_released_when_it_cannot_be_a_marker() -> None:
    stream = CitationStream(_sources())
    assert stream.feed("Years [") == ("Years", [])
    assert stream.feed("see below]") == (" [see below]", [])
