"""Unit tests of the value types and their rules."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from fireworq.model import (
    CompletionKind,
    Job,
    QueueDefinition,
    Result,
    completion_for,
)
from fireworq.web.cursors import decode_cursor, encode_cursor
from fireworq.names import InvalidName, check_category, check_queue_name, check_worker_url, storage_key
from fireworq.web.body import JsonNumber, stored_json_value


def job(retry_count: int) -> Job:
    return Job(1, "c", "http://w/", "", "grabbed", 0, 0, 0, 0, retry_count, 0)


class RetryRuleTests(SynchronousTestCase):
    def test_rule(self):
        self.assertIs(completion_for(job(3), Result("success")).kind, CompletionKind.SUCCESS)
        self.assertIs(completion_for(job(3), Result("failure")).kind, CompletionKind.RETRY)
        self.assertIs(completion_for(job(3), Result("internal-failure")).kind, CompletionKind.RETRY)
        self.assertIs(completion_for(job(0), Result("failure")).kind, CompletionKind.FAIL)
        self.assertIs(completion_for(job(3), Result("permanent-failure")).kind, CompletionKind.FAIL)

    def test_max_retries_and_attempt(self):
        j = Job(1, "c", "u", "", "claimed", 0, 0, 0, 2, 1, 0)
        self.assertEqual((j.max_retries, j.attempt), (3, 3))


class CursorTests(SynchronousTestCase):
    def test_round_trip_and_original_form(self):
        self.assertEqual(encode_cursor((1497510786, 13)), "MTQ5NzUxMDc4NiwxMw==")
        self.assertEqual(decode_cursor("MTQ5NzUxMDc4NiwxMw=="), (1497510786, 13))
        self.assertEqual(encode_cursor(None), "")

    def test_garbage(self):
        for text in ("%%%", "bm90IGEgY3Vyc29y", "LTEsMg==", "MSwy,"):
            self.assertRaises(ValueError, decode_cursor, text)


class ShapeTests(SynchronousTestCase):
    def test_queue_json(self):
        self.assertEqual(QueueDefinition("q", 0, 5).to_json(), {"name": "q", "max_workers": 5})
        self.assertEqual(
            QueueDefinition("q", 100, 5, 2.5, 3).to_json(),
            {"name": "q", "polling_interval": 100, "max_workers": 5,
             "max_dispatches_per_second": 2.5, "max_burst_size": 3},
        )

    def test_payload_display(self):
        self.assertEqual(stored_json_value('{"a":1}'), {"a": 1})
        self.assertEqual(stored_json_value("hello"), "hello")
        self.assertEqual(stored_json_value("12"), 12)
        self.assertEqual(stored_json_value('{"n":-0,"f":2.50}'), {"n": JsonNumber("-0"), "f": JsonNumber("2.50")})
        self.assertEqual(stored_json_value("NaN"), "NaN")

    def test_result_from_odd_json(self):
        self.assertEqual(Result.from_json("not json"), Result("", 0, ""))
        self.assertEqual(Result.from_json('{"status":"failure","code":true}'), Result("failure", 0, ""))


class NameTests(SynchronousTestCase):
    def test_queue_names(self):
        check_queue_name("a.b-c_d")
        check_queue_name("ü" * 127)
        for bad in ("", "a/b", "x" * 256, "ü" * 128, "tab\there"):
            self.assertRaises(InvalidName, check_queue_name, bad)

    def test_categories(self):
        check_category("a/b/c")
        self.assertRaises(InvalidName, check_category, "")
        self.assertRaises(InvalidName, check_category, "a\nb")

    def test_urls(self):
        check_worker_url("http://127.0.0.1:3000/work?x=1")
        check_worker_url("https://example.com")
        for bad in ("", "example.com/x", "ftp://h/x", "http://", "http://h x/", "http://h:99999/"):
            self.assertRaises(InvalidName, check_worker_url, bad)

    def test_storage_key_matches_the_original(self):
        self.assertEqual(storage_key("My-Queue.1"), "_y__ueue_1")
