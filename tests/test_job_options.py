"""
Tests for L{fireworq.joboptions}: the B7 job options, queue defaults, their
merge and how answers show them.
"""

from __future__ import annotations

import attr
from twisted.trial.unittest import SynchronousTestCase

from fireworq.joboptions.parse import (
    header_refusal,
    parse_job_options,
    parse_queue_defaults,
    with_idempotency_header,
)
from fireworq.joboptions.values import (
    HEADERS_MAX,
    HEADERS_MAX_BYTES,
    HOP_BY_HOP_HEADERS,
    JobOptions,
    QueueDefaults,
    add_option_fields,
    apply_queue_defaults,
    decode_options,
    encode_options,
    given_fields,
)
from fireworq.model import NewJob
from fireworq.web.body import JsonNumber, parse_json
from fireworq.web.errors import ApiError


def body(text: str) -> dict:
    """A push body decoded as the web layer decodes it (exact numbers)."""
    return parse_json(text.encode("utf-8"))


class RefusalMixin:
    def refused(self, value: dict, message: str, where: str = "", run_after: int = 0) -> None:
        """``value`` is refused with a 400 whose message is ``message``."""
        e = self.assertRaises(ApiError, parse_job_options, value, where, run_after)
        self.assertEqual((e.code, e.message), (400, message))


class PartATests(SynchronousTestCase):
    def test_no_options(self) -> None:
        """A Part A push has no option; its answer keeps the Part A shape."""
        options = parse_job_options({"url": "http://w/", "payload": {"a": 1}, "run_after": 3})
        self.assertTrue(options.is_empty)
        answer = {"id": 1, "url": "http://w/"}
        self.assertEqual(add_option_fields(dict(answer), options), answer)
        self.assertIsNone(encode_options(options))

    def test_unknown_fields_ignored(self) -> None:
        """Unknown fields stay ignored, as in Part A."""
        self.assertTrue(parse_job_options({"url": "u", "x": 1, "y": 2, "z": 3, "w": 4, "v": 5, "q": 6}).is_empty)

    def test_nulls_are_absent(self) -> None:
        """A null option is as if absent."""
        fields = ["name", "tags", "headers", "priority", "retry_backoff", "retry_max_delay",
                  "retry_jitter", "success", "deadline", "idempotency_key"]
        self.assertTrue(parse_job_options({f: None for f in fields}).is_empty)

    def test_effective_defaults(self) -> None:
        """Absent options take the built-in defaults, the original's behaviour."""
        options = JobOptions()
        self.assertEqual(options.effective_priority, 0)
        self.assertEqual(options.effective_backoff, 1.0)
        self.assertFalse(options.effective_jitter)
        self.assertEqual(options.effective_success, "status")
        self.assertIsNone(options.deadline_at(1000))
        self.assertEqual(options.delivery_headers(), {})


class NameAndTagsTests(RefusalMixin, SynchronousTestCase):
    def test_name(self) -> None:
        self.assertEqual(parse_job_options({"name": "n" * 255}).name, "n" * 255)
        self.assertEqual(parse_job_options({"name": "é" * 255}).name, "é" * 255)
        self.refused({"name": "n" * 256}, "field name must be at most 255 characters long, got 256")
        self.refused({"name": 3}, "field name must be a string, not a number")
        self.refused({"name": ""}, "field name must not be empty")
        self.refused({"name": "a\nb"}, "field name must not contain control characters")
        self.refused({"name": "\ud800"}, "field name is not valid Unicode text")

    def test_where(self) -> None:
        """Messages in a batch name the element."""
        self.refused({"name": 3}, "job [4]: field name must be a string, not a number", where="job [4]: ")

    def test_tags(self) -> None:
        options = parse_job_options(body('{"tags": {"b": "2", "a": "", "k": "v"}}'))
        self.assertEqual(options.tags, (("b", "2"), ("a", ""), ("k", "v")))
        self.assertEqual(options.tags, parse_job_options({"tags": {"b": "2", "a": "", "k": "v"}}).tags)
        sixteen = {f"k{i}": "v" for i in range(16)}
        self.assertEqual(len(parse_job_options({"tags": sixteen}).tags), 16)
        self.assertEqual(parse_job_options({"tags": {}}).tags, ())
        self.refused({"tags": dict(sixteen, k16="v")}, "field tags may hold at most 16 tags, got 17")
        self.refused({"tags": ["a"]}, "field tags must be an object, not an array")
        self.refused({"tags": {"k": 1}}, "field tags: the value of 'k' must be a string, not a number")
        self.refused({"tags": {"k" * 65: "v"}}, "field tags: a key must be at most 64 characters long, got 65")
        self.assertEqual(parse_job_options({"tags": {"k" * 64: "v" * 255}}).tags, (("k" * 64, "v" * 255),))
        self.refused(
            {"tags": {"k": "v" * 256}}, "field tags: the value of 'k' must be at most 255 characters long, got 256"
        )
        self.refused({"tags": {"": "v"}}, "field tags: a key must not be empty")
        self.refused({"tags": {"a:b": "v"}}, "field tags: key 'a:b' must not contain ':'")


class HeaderTests(RefusalMixin, SynchronousTestCase):
    def test_accepted(self) -> None:
        options = parse_job_options({"headers": {"Authorization": "Bearer x", "X-Trace": "é\tv"}})
        self.assertEqual(options.headers, (("Authorization", "Bearer x"), ("X-Trace", "é\tv")))
        self.assertEqual(
            options.delivery_headers(),
            {b"Authorization": [b"Bearer x"], b"X-Trace": ["é\tv".encode("utf-8")]},
        )

    def test_every_refused_name(self) -> None:
        """Each listed header is refused, in any case."""
        names = [
            "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
            "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Content-Type",
            "X-Fireworq-Job-Id", "x-fireworq-anything", "X-FIREWORQ-", "webhook-id", "Webhook-Signature",
            "WEBHOOK-TIMESTAMP",
        ]
        for name in names:
            for spelled in (name, name.lower(), name.upper()):
                e = self.assertRaises(ApiError, parse_job_options, {"headers": {spelled: "v"}})
                self.assertEqual(e.code, 400)
                self.assertTrue(e.message.startswith(f"field headers: {spelled} "), e.message)
                self.assertTrue(e.message.endswith(" and cannot be given"), e.message)
        self.assertEqual(len(HOP_BY_HOP_HEADERS), 8)

    def test_refusal_reasons(self) -> None:
        self.assertEqual(header_refusal("Upgrade"), "is a hop-by-hop header")
        self.assertEqual(header_refusal("content-type"), "is set by the delivery")
        self.assertIn("reserved", header_refusal("Webhook-Id"))
        self.assertIsNone(header_refusal("X-Fireworq"))  # no dash: not the family
        self.assertIsNone(header_refusal("Webhook"))
        self.assertIsNone(header_refusal("Idempotency-Key"))
        self.assertIsNone(header_refusal("User-Agent"))

    def test_names_are_tokens(self) -> None:
        for name in ["", "a b", "a:b", "é", "a\n", "a\r\nb", "(x)", "a/b", "a@b", 'a"b']:
            e = self.assertRaises(ApiError, parse_job_options, {"headers": {name: "v"}})
            self.assertEqual(e.message, f"field headers: {name!r} is not a valid HTTP header name")
        # Every tchar is allowed.
        name = "!#$%&'*+-.^_`|~09azAZ"
        self.assertEqual(parse_job_options({"headers": {name: "v"}}).headers, ((name, "v"),))

    def test_values(self) -> None:
        for bad in ["a\rb", "a\nb", "a\x00b", "\r\n"]:
            self.refused({"headers": {"X-A": bad}}, "field headers: the value of X-A must not contain CR, LF or NUL")
        self.refused({"headers": {"X-A": 1}}, "field headers: the value of X-A must be a string, not a number")
        self.refused({"headers": {"X-A": None}}, "field headers: the value of X-A must be a string, not null")
        self.refused({"headers": {"X-A": "\udc00"}}, "field headers: the value of X-A is not valid Unicode text")
        self.assertEqual(parse_job_options({"headers": {"X-A": ""}}).headers, (("X-A", ""),))

    def test_same_header_twice(self) -> None:
        self.refused({"headers": {"X-A": "1", "x-a": "2"}}, "field headers: X-A and x-a name the same header")

    def test_count(self) -> None:
        many = {f"X-{i}": "v" for i in range(HEADERS_MAX)}
        self.assertEqual(len(parse_job_options({"headers": many}).headers), 32)
        many["X-32"] = "v"
        self.refused({"headers": many}, "field headers may hold at most 32 headers, got 33")

    def test_size(self) -> None:
        """8 KiB of names and values in UTF-8, counted exactly."""
        value = "v" * (HEADERS_MAX_BYTES - 3)
        self.assertEqual(len(parse_job_options({"headers": {"X-A": value}}).headers[0][1]), 8189)
        self.refused(
            {"headers": {"X-A": value + "v"}},
            "field headers take 8193 bytes of names and values; at most 8192 are allowed",
        )
        # é is 2 bytes in UTF-8.
        self.refused(
            {"headers": {"X-A": "é" * 4095}},
            "field headers take 8193 bytes of names and values; at most 8192 are allowed",
        )
        self.refused({"headers": "x"}, "field headers must be an object, not a string")


class NumberTests(RefusalMixin, SynchronousTestCase):
    def test_priority(self) -> None:
        for value, expected in [(-100, -100), (100, 100), (0, 0), (7, 7)]:
            self.assertEqual(parse_job_options({"priority": value}).priority, expected)
        self.assertEqual(parse_job_options(body('{"priority": 5.0}')).priority, 5)
        self.assertEqual(parse_job_options(body('{"priority": -1e2}')).priority, -100)
        self.assertEqual(parse_job_options(body('{"priority": -0}')).priority, 0)
        self.refused({"priority": 101}, "field priority must be at most 100, got 101")
        self.refused({"priority": -101}, "field priority must be at least -100, got -101")
        self.refused({"priority": 1.5}, "field priority must be a whole number, got 1.5")
        self.refused({"priority": "1"}, "field priority must be a whole number, not a string")
        self.refused({"priority": True}, "field priority must be a whole number, not a boolean")
        self.refused(body('{"priority": 1e400}'), "field priority must be at most 100, got 1e400")
        self.refused({"priority": JsonNumber("9" * 500)}, "field priority must be at most 100, got 99999999999999999999… (500 characters)")

    def test_retry_backoff(self) -> None:
        for value in [1, 10, 1.5, 2]:
            self.assertEqual(parse_job_options({"retry_backoff": value}).retry_backoff, float(value))
        self.assertEqual(parse_job_options(body('{"retry_backoff": 1.0000000000000000001}')).retry_backoff, 1.0)
        self.refused({"retry_backoff": 0}, "field retry_backoff must be at least 1, got 0")
        self.refused({"retry_backoff": 0.999}, "field retry_backoff must be at least 1, got 0.999")
        self.refused({"retry_backoff": 10.001}, "field retry_backoff must be at most 10, got 10.001")
        self.refused({"retry_backoff": -2}, "field retry_backoff must be at least 1, got -2")
        self.refused({"retry_backoff": "2"}, "field retry_backoff must be a number, not a string")
        self.refused({"retry_backoff": False}, "field retry_backoff must be a number, not a boolean")

    def test_retry_max_delay(self) -> None:
        self.assertEqual(parse_job_options({"retry_max_delay": 0}).retry_max_delay, 0)
        self.assertEqual(parse_job_options({"retry_max_delay": 4294967295}).retry_max_delay, 4294967295)
        self.refused({"retry_max_delay": 4294967296}, "field retry_max_delay must be at most 4294967295, got 4294967296")
        self.refused({"retry_max_delay": -1}, "field retry_max_delay must not be negative, got -1")
        self.refused({"retry_max_delay": 1.5}, "field retry_max_delay must be a whole number of seconds, got 1.5")

    def test_retry_jitter(self) -> None:
        self.assertIs(parse_job_options({"retry_jitter": True}).retry_jitter, True)
        self.assertIs(parse_job_options({"retry_jitter": False}).retry_jitter, False)
        self.refused({"retry_jitter": 1}, "field retry_jitter must be true or false, not a number")
        self.refused({"retry_jitter": "true"}, "field retry_jitter must be true or false, not a string")

    def test_success(self) -> None:
        self.assertEqual(parse_job_options({"success": "2xx"}).success, "2xx")
        self.assertEqual(parse_job_options({"success": "status"}).success, "status")
        self.assertEqual(parse_job_options({"success": "2xx"}).effective_success, "2xx")
        self.refused({"success": "2XX"}, "field success must be \"status\" or \"2xx\", got '2XX'")
        self.refused({"success": 200}, "field success must be \"status\" or \"2xx\", not a number")

    def test_deadline(self) -> None:
        self.assertEqual(parse_job_options({"deadline": 1}).deadline, 1)
        self.assertEqual(parse_job_options({"deadline": 11}, run_after=10).deadline, 11)
        self.assertEqual(parse_job_options({"deadline": 60}).deadline_at(1_000), 61_000)
        self.refused({"deadline": 0}, "field deadline must be greater than run_after (0 seconds), got 0")
        self.refused(
            {"deadline": 10}, "job [1]: field deadline must be greater than run_after (10 seconds), got 10",
            where="job [1]: ", run_after=10,
        )
        self.refused({"deadline": -5}, "field deadline must not be negative, got -5")
        self.refused({"deadline": "5"}, "field deadline must be a whole number of seconds, not a string")


class IdempotencyKeyTests(RefusalMixin, SynchronousTestCase):
    def test_field(self) -> None:
        self.assertEqual(parse_job_options({"idempotency_key": "k" * 255}).idempotency_key, "k" * 255)
        self.refused({"idempotency_key": "k" * 256}, "field idempotency_key must be at most 255 characters long, got 256")
        self.refused({"idempotency_key": ""}, "field idempotency_key must not be empty")
        self.refused({"idempotency_key": 5}, "field idempotency_key must be a string, not a number")
        self.refused({"idempotency_key": "a\r\nb"}, "field idempotency_key must not contain control characters")

    def header(self, options: JobOptions, values, batch: bool = False) -> str:
        e = self.assertRaises(ApiError, with_idempotency_header, options, values, batch)
        self.assertEqual(e.code, 400)
        return e.message

    def test_header_single_push(self) -> None:
        none = JobOptions()
        self.assertIs(with_idempotency_header(none, None), none)
        self.assertIs(with_idempotency_header(none, []), none)
        self.assertEqual(with_idempotency_header(none, [b"abc"]).idempotency_key, "abc")
        self.assertEqual(with_idempotency_header(none, ["é".encode()]).idempotency_key, "é")
        same = JobOptions(idempotency_key="abc")
        self.assertEqual(with_idempotency_header(same, [b"abc"]), same)
        self.assertEqual(
            self.header(JobOptions(idempotency_key="xyz"), [b"abc"]),
            "header Idempotency-Key and field idempotency_key differ; give one of them",
        )
        self.assertEqual(self.header(none, [b"a", b"b"]), "header Idempotency-Key is given more than once")
        self.assertEqual(self.header(none, [b"\xff"]), "header Idempotency-Key is not valid UTF-8")
        self.assertEqual(self.header(none, [b""]), "header Idempotency-Key must not be empty")
        self.assertEqual(
            self.header(none, [b"k" * 256]), "header Idempotency-Key must be at most 255 characters long, got 256"
        )

    def test_header_batch_push(self) -> None:
        none = JobOptions()
        self.assertIs(with_idempotency_header(none, None, batch=True), none)
        self.assertEqual(
            self.header(none, [b"abc"], batch=True),
            "header Idempotency-Key cannot be used on a batch push; give each job its own idempotency_key field",
        )


class QueueDefaultsTests(SynchronousTestCase):
    def test_parse(self) -> None:
        defaults = parse_queue_defaults(
            {"name": "q", "max_workers": 3, "max_retries": 5, "retry_delay": 10, "retry_backoff": 2,
             "retry_max_delay": 600, "retry_jitter": True, "timeout": 30, "priority": -3, "success": "2xx"}
        )
        self.assertEqual(
            defaults,
            QueueDefaults(5, 10, 2.0, 600, True, 30, -3, "2xx"),
        )
        self.assertEqual(
            defaults.to_json(),
            {"max_retries": 5, "retry_delay": 10, "retry_backoff": 2, "retry_max_delay": 600,
             "retry_jitter": True, "timeout": 30, "priority": -3, "success": "2xx"},
        )
        self.assertEqual(QueueDefaults.from_json(defaults.to_json()), defaults)

    def test_built_in_values_are_no_default(self) -> None:
        """A default equal to the built-in one is not kept, so the answer does not show it."""
        defaults = parse_queue_defaults(
            {"max_retries": 0, "retry_delay": 0, "retry_backoff": 1, "retry_jitter": False, "timeout": 0,
             "priority": 0, "success": "status"}
        )
        self.assertTrue(defaults.is_empty)
        self.assertEqual(defaults.to_json(), {})
        self.assertEqual(parse_queue_defaults({"retry_max_delay": 0}).to_json(), {"retry_max_delay": 0})

    def test_refused(self) -> None:
        for value, message in [
            ({"max_retries": -1}, "field max_retries must not be negative, got -1"),
            ({"retry_backoff": 11}, "field retry_backoff must be at most 10, got 11"),
            ({"priority": 101}, "field priority must be at most 100, got 101"),
            ({"success": "x"}, "field success must be \"status\" or \"2xx\", got 'x'"),
            ({"retry_jitter": 0}, "field retry_jitter must be true or false, not a number"),
            ({"timeout": 1.5}, "field timeout must be a whole number of seconds, got 1.5"),
        ]:
            e = self.assertRaises(ApiError, parse_queue_defaults, value)
            self.assertEqual((e.code, e.message), (400, message))

    def test_from_json_tolerant(self) -> None:
        """Stored defaults are read field by field; a bad one is dropped, not fatal."""
        self.assertEqual(QueueDefaults.from_json({"priority": 500, "timeout": 3}), QueueDefaults(timeout=3))
        self.assertEqual(QueueDefaults.from_json("junk"), QueueDefaults())


class MergeTests(SynchronousTestCase):
    defaults = QueueDefaults(max_retries=5, retry_delay=10, retry_backoff=2.0, timeout=30, priority=4, success="2xx")

    def test_push_wins(self) -> None:
        pushed = {"url": "u", "max_retries": 0, "retry_delay": 1, "timeout": 2, "priority": -1, "success": "status"}
        job = NewJob("c", "u", max_retries=0, retry_delay=1, timeout=2)
        options = parse_job_options(pushed)
        merged_job, merged = apply_queue_defaults(job, options, self.defaults, given_fields(pushed))
        self.assertEqual(merged_job, job)
        self.assertEqual(merged.priority, -1)
        self.assertEqual(merged.success, "status")
        self.assertEqual(merged.retry_backoff, 2.0)

    def test_queue_default_fills(self) -> None:
        pushed = {"url": "u", "max_retries": None}
        job = NewJob("c", "u")
        merged_job, merged = apply_queue_defaults(job, parse_job_options(pushed), self.defaults, given_fields(pushed))
        self.assertEqual((merged_job.max_retries, merged_job.retry_delay, merged_job.timeout), (5, 10, 30))
        self.assertEqual(merged, JobOptions(priority=4, retry_backoff=2.0, success="2xx"))
        # The answer shows the fields the queue default filled.
        answer = add_option_fields({"id": 1}, merged)
        self.assertEqual(answer, {"id": 1, "priority": 4, "retry_backoff": 2, "success": "2xx"})

    def test_built_in_default(self) -> None:
        job = NewJob("c", "u")
        self.assertEqual(apply_queue_defaults(job, JobOptions(), QueueDefaults(), frozenset()), (job, JobOptions()))

    def test_given_fields(self) -> None:
        self.assertEqual(given_fields({"max_retries": 0, "timeout": None, "url": "u"}), frozenset(["max_retries"]))


class AnswerAndStorageTests(SynchronousTestCase):
    full = {
        "url": "u", "name": "n", "tags": {"t": "v"}, "headers": {"X-A": "1"}, "priority": 3,
        "retry_backoff": 1.5, "retry_max_delay": 60, "retry_jitter": False, "success": "2xx",
        "deadline": 600, "idempotency_key": "k",
    }

    def test_answer_fields(self) -> None:
        options = parse_job_options(self.full)
        answer = add_option_fields({"id": 1, "url": "u"}, options)
        self.assertEqual(list(answer), ["id", "url", "name", "tags", "headers", "priority", "retry_backoff",
                                        "retry_max_delay", "retry_jitter", "success", "deadline", "idempotency_key"])
        self.assertEqual({k: v for k, v in answer.items() if k != "id"}, self.full)

    def test_only_given(self) -> None:
        """A field shows when the push gave it, default value included."""
        self.assertEqual(add_option_fields({}, parse_job_options({"priority": 0})), {"priority": 0})
        self.assertEqual(add_option_fields({}, parse_job_options({"retry_backoff": 2})), {"retry_backoff": 2})

    def test_round_trip(self) -> None:
        options = parse_job_options(self.full)
        text = encode_options(options)
        self.assertIsInstance(text, str)
        self.assertEqual(decode_options(text), options)
        self.assertEqual(decode_options(None), JobOptions())
        self.assertEqual(decode_options(""), JobOptions())
        self.assertEqual(decode_options("not json"), JobOptions())
        self.assertEqual(decode_options("[1]"), JobOptions())

    def test_decode_tolerant(self) -> None:
        """A stored field that is no longer valid is dropped alone."""
        self.assertEqual(decode_options('{"priority": 1000, "name": "n"}'), JobOptions(name="n"))

    def test_evolve_keeps_frozen(self) -> None:
        options = JobOptions(name="a")
        self.assertRaises(attr.exceptions.FrozenInstanceError, setattr, options, "name", "b")


class NeverAnErrorTests(SynchronousTestCase):
    """Whatever JSON a client sends, the answer is the options or a 400 (never a 500)."""

    def test_random_values(self) -> None:
        import random as random_module

        rng = random_module.Random(20261206)
        atoms = [None, True, False, 0, -1, 1, 101, -101, 1.5, 10, 10.5, 2**70, "", "x", "2xx", "status",
                 "\ud800", "a\r\nb", "k" * 300, JsonNumber("1e400"), JsonNumber("-0"), [], {}, [1], {"a": "b"},
                 {"X-A": "v"}, {"Host": "h"}, {"a:b": "c"}, {"": ""}, {"X-A": 1}, {"é": "v"}]
        fields = ["name", "tags", "headers", "priority", "retry_backoff", "retry_max_delay", "retry_jitter",
                  "success", "deadline", "idempotency_key", "run_after"]
        outcomes = {"ok": 0, "400": 0}
        for _ in range(3000):
            pushed = {field: rng.choice(atoms) for field in rng.sample(fields, rng.randint(1, len(fields)))}
            try:
                options = parse_job_options(pushed, run_after=rng.choice([0, 5]))
            except ApiError as e:
                self.assertEqual(e.code, 400)
                self.assertIn("field", e.message)
                outcomes["400"] += 1
            else:
                self.assertEqual(decode_options(encode_options(options)), options)
                add_option_fields({}, options)
                outcomes["ok"] += 1
            try:
                parse_queue_defaults(pushed)
            except ApiError as e:
                self.assertEqual(e.code, 400)
        self.assertGreater(outcomes["ok"], 50)
        self.assertGreater(outcomes["400"], 50)
