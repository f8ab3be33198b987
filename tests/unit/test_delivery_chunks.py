from mailer.delivery import chunk_ranges, chunk_size_for, retry_delay


def test_chunk_ranges_cover_every_id_once() -> None:
    ids = [1, 2, 3, 7, 8, 20, 21]
    assert chunk_ranges(ids, 3) == [(1, 3), (7, 20), (21, 21)]
    assert chunk_ranges([], 3) == []


def test_small_sends_spread_over_threads_big_ones_use_full_chunks() -> None:
    assert chunk_size_for(100, threads=4, maximum=200) == 25
    assert chunk_size_for(10_000, threads=8, maximum=200) == 200
    assert chunk_size_for(3, threads=8, maximum=200) == 25


def test_retry_delay_grows_and_is_capped() -> None:
    first = retry_delay(1).total_seconds()
    later = retry_delay(6).total_seconds()
    assert 45 <= first <= 75
    assert later > first * 10
    assert retry_delay(40).total_seconds() <= 4 * 3600 * 1.25
