"""Sources: URL normalisation, refused schemes, URL lists, local files and folders, dedupe."""

import hashlib

import pytest

from emoforge.curation.sources import expand_sources, normalise_url, url_key


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("HTTP://Example.COM:80/a/./b/../c?b=2&a=1#frag", "http://example.com/a/c?a=1&b=2"),
        ("https://ex.com:443", "https://ex.com/"),
        ("https://ex.com:8443/x?utm_source=n&utm_medium=m&fbclid=1&id=7", "https://ex.com:8443/x?id=7"),
        ("https://ex.com/%7euser/a%2fb c", "https://ex.com/~user/a%2Fb%20c"),
        ("  https://bücher.de/x  ", "https://xn--bcher-kva.de/x"),
        ("http://[::1]:8080/v.mp4", "http://[::1]:8080/v.mp4"),
    ],
)
def test_normalise_url(raw, expected):
    assert normalise_url(raw) == expected


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("file:///etc/passwd", "scheme 'file' refused"),
        ("ftp://example.com/v.mp4", "scheme 'ftp' refused"),
        ("javascript:alert(1)", "scheme 'javascript' refused"),
        ("data:video/mp4;base64,AAAA", "scheme 'data' refused"),
        ("http://user:secret@example.com/v.mp4", "credentials"),
        ("http:///v.mp4", "no host"),
        ("http://example.com/a\nb", "control characters"),
    ],
)
def test_other_schemes_and_bad_urls_are_refused_with_a_reason(raw, reason):
    with pytest.raises(ValueError, match=reason):
        normalise_url(raw)
    sources, rejected = expand_sources([raw])
    assert sources == [] and len(rejected) == 1
    assert reason in rejected[0].reason and rejected[0].item == raw.strip()


def test_site_urls_key_on_the_extractor_id_and_generic_urls_on_the_whole_url():
    # Offline: yt-dlp's site extractors recognise the id from the URL alone.
    assert url_key(normalise_url("https://youtu.be/dQw4w9WgXcQ")) == "Youtube:dQw4w9WgXcQ"
    assert url_key(normalise_url("https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42")) == "Youtube:dQw4w9WgXcQ"
    # yt-dlp's archive would key both of these by the file name "clip"; we must not.
    a = url_key(normalise_url("http://127.0.0.1:8000/a/clip.mp4"))
    b = url_key(normalise_url("http://127.0.0.1:8000/b/clip.mp4"))
    assert a == "http://127.0.0.1:8000/a/clip.mp4" and a != b


def test_urls_dedupe_on_the_normalised_form_and_ids_are_deterministic():
    items = [
        "http://127.0.0.1:8000/a/clip.mp4?x=1&y=2",
        "http://127.0.0.1:8000/a/clip.mp4?y=2&x=1#t=3",  # same after normalising
        "http://127.0.0.1:8000/b/clip.mp4?x=1&y=2",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ&utm_source=share",
    ]
    sources, rejected = expand_sources(items)
    assert [s.location for s in sources] == [
        "http://127.0.0.1:8000/a/clip.mp4?x=1&y=2",
        "http://127.0.0.1:8000/b/clip.mp4?x=1&y=2",
        "https://youtu.be/dQw4w9WgXcQ",
    ]
    assert sources[0].source_id == hashlib.sha256(sources[0].location.encode()).hexdigest()[:16]
    assert sources[2].source_id == hashlib.sha256(b"Youtube:dQw4w9WgXcQ").hexdigest()[:16]
    assert len({s.source_id for s in sources}) == 3
    assert [r.reason.split(" (")[0] for r in rejected] == [
        f"duplicate of source {sources[0].source_id}",
        f"duplicate of source {sources[2].source_id}",
    ]
    again, _ = expand_sources(list(reversed(items)))
    assert {s.source_id for s in again} == {s.source_id for s in sources}


def test_url_list_files_folders_and_local_files(tmp_path):
    media = tmp_path / "media"
    (media / "nested" / "deeper").mkdir(parents=True)
    (media / ".hidden").mkdir()
    (media / "one.MP4").write_bytes(b"video one")
    (media / "nested" / "deeper" / "two.webm").write_bytes(b"video two")
    (media / "nested" / "copy-of-one.mkv").write_bytes(b"video one")  # same bytes: a duplicate
    (media / "notes.txt").write_text("not media")
    (media / ".hidden" / "three.mp4").write_bytes(b"hidden")
    (media / "link.mp4").symlink_to(media / "one.MP4")
    url_list = tmp_path / "urls.txt"
    url_list.write_text(
        "# a comment\n\nhttps://example.com/v.mp4\n  https://example.com/w.mp4  \n"
        "ftp://example.com/x.mp4\nnot a url\n",
        encoding="utf-8",
    )
    binary = tmp_path / "blob.dat"
    binary.write_bytes(b"\x00\x01\x02")

    sources, rejected = expand_sources([str(media), str(url_list), str(binary), str(tmp_path / "missing.mp4")])

    files = [s for s in sources if s.kind == "file"]
    assert sorted(s.location for s in files) == sorted(
        [str((media / "one.MP4").resolve()), str((media / "nested" / "deeper" / "two.webm").resolve())]
    )
    for source in files:
        digest = hashlib.sha256(open(source.location, "rb").read()).hexdigest()
        assert source.source_id == digest[:16] and source.key == f"sha256:{digest}"
    urls = [s for s in sources if s.kind == "url"]
    assert [s.location for s in urls] == ["https://example.com/v.mp4", "https://example.com/w.mp4"]
    assert urls[0].origin == f"{url_list}:3"
    reasons = {r.origin: r.reason for r in rejected}
    assert "duplicate of source" in reasons[str(media)]
    assert "scheme 'ftp' refused" in reasons[f"{url_list}:5"]
    assert "not a URL" in reasons[f"{url_list}:6"]
    assert "neither media" in reasons[str(binary)]
    assert "no such file" in reasons[str(tmp_path / "missing.mp4")]
    assert len(rejected) == 5


def test_a_path_that_looks_like_a_scheme_is_local_when_it_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c:clip.mp4").write_bytes(b"x")
    sources, rejected = expand_sources(["c:clip.mp4", "c:missing.mp4"])
    assert [s.kind for s in sources] == ["file"]
    assert "scheme 'c' refused" in rejected[0].reason
