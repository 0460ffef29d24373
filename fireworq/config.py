"""
Settings: defaults, ``FIREWORQ_*`` environment variables and ``--options``,
validated once into one frozen L{Config}.

Every setting ``name`` is read from the option ``--name-with-dashes`` if
given, else from ``FIREWORQ_NAME``, else from its default.  A bad value stops
start-up with one line naming the setting (see L{ConfigError}).  What the
settings name outside the process (the bind host, log and pid files, the
sqlite file) is checked at start-up by L{fireworq.preflight}.
"""

from __future__ import annotations

import os
import re
from typing import Dict, Mapping, Optional, Tuple

import attr

from fireworq import __version__
from fireworq.names import InvalidName, check_queue_name
from fireworq.store.mysql.dsn import parse_dsn

ENV_PREFIX = "FIREWORQ_"

DRIVERS = ("mysql", "sqlite", "in-memory")

LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""

    def __init__(self, name: str, value: str, problem: str) -> None:
        self.name = name
        self.value = value
        self.problem = problem
        super().__init__(
            f"invalid setting {name}={value!r} "
            f"(--{name.replace('_', '-')} / {ENV_PREFIX}{name.upper()}): {problem}"
        )


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Setting:
    """One configurable name: its default, what it means, whether it is secret."""

    name: str
    default: str
    description: str
    secret: bool = False

    @property
    def option(self) -> str:
        """The command-line option, without the leading dashes."""
        return self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable."""
        return ENV_PREFIX + self.name.upper()


SETTINGS: Tuple[Setting, ...] = (
    Setting(
        "bind",
        "127.0.0.1:8080",
        "Listen address of the HTTP API: host:port, or a Twisted server endpoint "
        "description starting with tcp:, ssl: or unix: (e.g. unix:/run/fireworq.sock).",
    ),
    Setting("driver", "", "Store driver: mysql, sqlite or in-memory (default: mysql when a MySQL DSN is set, else sqlite)."),
    Setting("mysql_dsn", "", "MySQL DSN user:pass@tcp(host:port)/db?opts for jobs and definitions.", secret=True),
    Setting("queue_mysql_dsn", "", "MySQL DSN for the job tables (default: mysql_dsn).", secret=True),
    Setting("repository_mysql_dsn", "", "MySQL DSN for queue definitions and routings (default: mysql_dsn).", secret=True),
    Setting("sqlite_path", "./fireworq.sqlite3", "Database file of the sqlite driver."),
    Setting("queue_default", "", "Name of the default queue, created if missing; none when empty."),
    Setting("queue_default_polling_interval", "200", "Default polling interval of a queue, in milliseconds."),
    Setting("queue_default_max_workers", "20", "Default number of concurrent deliveries of a queue."),
    Setting("config_refresh_interval", "1000", "Milliseconds between checks for definitions changed by other nodes."),
    Setting("lease_ttl", "3000", "Milliseconds a queue lease lasts without renewal (failover bound, MySQL)."),
    Setting("shutdown_timeout", "30", "Seconds to wait for in-flight deliveries on shutdown."),
    Setting("keep_alive", "false", "Keep HTTP API connections alive (true/false)."),
    Setting("dispatch_keep_alive", "", "Reuse connections to workers (default: keep_alive)."),
    Setting("dispatch_max_conns_per_host", "10", "Idle connections kept per worker host (at least max_workers are kept)."),
    Setting("dispatch_idle_conn_timeout", "0", "Seconds before an idle worker connection is closed; 0 = never."),
    Setting("dispatch_user_agent", "", "User-Agent of deliveries (default: Fireworq/<version>)."),
    Setting("dispatch_ca_file", "", "PEM file of the CAs trusted for https workers' certificates, in place of the system's (default: the system's)."),
    Setting("signing_overlap", "86400", "Seconds a rotated-out signing secret of a queue still signs deliveries, beside the new one."),
    Setting("max_request_body", "1048576", "Largest request body the API accepts, in bytes."),
    Setting("request_header_timeout", "10", "Seconds a request's line and headers may take to arrive (408 beyond); 0 = no limit."),
    Setting("request_body_timeout", "60", "Seconds a request's body may take to arrive after its headers (408 beyond); 0 = no limit."),
    Setting("max_connections", "1000", "HTTP API connections open at once; more are answered 503 (0 = no limit)."),
    Setting("job_lifetime", "0", "Seconds a finished job is kept with its result in a queue that does not set its own retention (0: completed jobs are deleted at once, as in the original)."),
    Setting("idempotency_window", "86400", "Seconds a job's idempotency key is remembered within its queue (a push of a key used within it is answered with the first push)."),
    Setting("access_log", "", "Access log file (default: standard output)."),
    Setting("access_log_tag", "fireworq.access", "The tag field of access log lines."),
    Setting("queue_log", "", "Queue log file (default: standard output)."),
    Setting("queue_log_tag", "fireworq.queue", "The tag field of queue log lines."),
    Setting("queue_log_level", "", "Queue log level: debug, info, warn, error, fatal or 0-4 (default: info, debug if DEBUG is set)."),
    Setting("error_log", "", "Error log file (default: standard error)."),
    Setting("error_log_level", "", "Error log level: debug, info, warn, error, fatal or 0-4 (default: info, debug if DEBUG is set)."),
    Setting("pid", "", "File to write the process id to."),
    Setting("workers", "1", "Server processes on this host, sharing the listening port (more than 1: mysql driver and a host:port bind only; docs/production.md)."),
    Setting("auth", "off", "Require bearer tokens on the API (on/off; docs/security.md)."),
    Setting(
        "admin_token", "", "Bootstrap admin token accepted when auth is on (prefer FIREWORQ_ADMIN_TOKEN or admin_token_file).",
        secret=True,
    ),
    Setting("admin_token_file", "", "File holding the bootstrap admin token (its first line)."),
    Setting("metrics_public", "false", "Serve /metrics without a token when auth is on (true/false)."),
)

SETTINGS_BY_NAME: Dict[str, Setting] = {s.name: s for s in SETTINGS}


@attr.s(frozen=True, slots=True, auto_attribs=True)
class Config:
    """The effective, validated settings of one server process."""

    bind_host: str
    bind_port: int
    driver: str
    mysql_dsn: str
    queue_mysql_dsn: str
    repository_mysql_dsn: str
    sqlite_path: str
    queue_default: str
    queue_default_polling_interval: int
    queue_default_max_workers: int
    config_refresh_interval: int
    lease_ttl: int
    shutdown_timeout: int
    keep_alive: bool
    dispatch_keep_alive: bool
    dispatch_max_conns_per_host: int
    dispatch_idle_conn_timeout: int
    dispatch_user_agent: str
    max_request_body: int
    access_log: str
    access_log_tag: str
    queue_log: str
    queue_log_tag: str
    queue_log_level: str
    error_log: str
    error_log_level: str
    pid: str
    request_header_timeout: int = 10
    request_body_timeout: int = 60
    max_connections: int = 1000
    #: Seconds an idempotency key of a pushed job is remembered (B7).
    idempotency_window: int = 86400
    job_lifetime: int = 0
    #: ``bind`` when it is an endpoint description (``tcp:``, ``ssl:``,
    #: ``unix:``), else empty (then ``bind_host`` and ``bind_port`` say it).
    bind_endpoint: str = ""
    #: CA certificates (PEM file) trusted for https workers; '' = the system's (B15).
    dispatch_ca_file: str = ""
    #: Seconds a rotated-out signing secret still signs (B11).
    signing_overlap: int = 86400
    #: Whether the API requires bearer tokens (setting ``auth``).
    auth: bool = False
    #: The bootstrap admin token (from ``admin_token`` or ``admin_token_file``);
    #: never shown (repr, /settings, logs).
    admin_token: str = attr.ib(default="", repr=False)
    admin_token_file: str = ""
    metrics_public: bool = False
    #: Server processes on this host sharing the port (L{fireworq.server.workers}).
    workers: int = 1
    #: The raw (unparsed but defaulted) value of every setting, for /settings.
    raw: Mapping[str, str] = attr.ib(factory=dict, repr=False)

    def settings(self) -> Dict[str, str]:
        """
        The effective configuration as strings, secrets masked (A7): what
        the server really uses, so inherited and defaulted values are
        resolved (``dispatch_user_agent`` is ``Fireworq/<version>``,
        ``dispatch_keep_alive`` follows ``keep_alive``, the job and
        definition DSNs follow ``mysql_dsn``, levels are names).  A log path
        stays empty when the log goes to a standard stream, so that every
        value can be given back as a setting.
        """
        out: Dict[str, str] = {}
        for setting in SETTINGS:
            value = self._effective(setting.name)
            if setting.secret and value:
                if not setting.name.endswith("_dsn"):
                    value = "***"
                else:
                    try:
                        value = parse_dsn(value).masked(value)
                    except ValueError:
                        value = "***"
            out[setting.name] = value
        return out

    def _effective(self, name: str) -> str:
        """The value of setting ``name`` as the server uses it, as a string."""
        if name == "bind" and self.bind_endpoint:
            return self.bind_endpoint
        if name == "bind":
            host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
            return f"{host}:{self.bind_port}"
        value = getattr(self, name, None)
        if value is None:
            return self.raw.get(name, "")
        if name == "auth":
            return "on" if value else "off"
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


def _bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on", "t"):
        return True
    if lowered in ("false", "0", "no", "off", "f"):
        return False
    raise ConfigError(name, text, "must be true or false")


def _int(name: str, text: str, minimum: int, maximum: int = 2**31 - 1) -> int:
    try:
        value = int(text.strip(), 10)
    except ValueError:
        raise ConfigError(name, text, "must be a whole number")
    if not minimum <= value <= maximum:
        raise ConfigError(name, text, f"must be between {minimum} and {maximum}")
    return value


def _level(name: str, text: str, debug: bool) -> str:
    if not text:
        return "debug" if debug else "info"
    lowered = text.strip().lower()
    if lowered.isdigit() and int(lowered) < len(LOG_LEVELS):
        return LOG_LEVELS[int(lowered)]
    if lowered == "warning":
        return "warn"
    if lowered in LOG_LEVELS:
        return lowered
    raise ConfigError(name, text, "must be debug, info, warn, error, fatal or 0-4")


#: The shortest bootstrap admin token accepted (it guards everything).
MIN_ADMIN_TOKEN = 16


def _admin_token(value: str, path: str) -> str:
    """
    The bootstrap admin token: ``admin_token``, else the first line of
    ``admin_token_file``.  Errors never quote the token.
    """
    if value and path:
        raise ConfigError("admin_token_file", path, "give admin_token or admin_token_file, not both")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.readline().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("admin_token_file", path, f"cannot read the file: {getattr(e, 'strerror', None) or e}")
        if not value:
            raise ConfigError("admin_token_file", path, "the file's first line is empty")
    value = value.strip()
    if value and (len(value) < MIN_ADMIN_TOKEN or not value.isascii() or not value.isprintable() or " " in value):
        raise ConfigError(
            "admin_token", "***",
            f"must be at least {MIN_ADMIN_TOKEN} printable ASCII characters without spaces",
        )
    return value


#: How an endpoint description given as ``bind`` may start.
ENDPOINT_PREFIXES = ("tcp:", "ssl:", "unix:")


def _bind_endpoint(text: str) -> Tuple[str, int]:
    """
    Check an endpoint description by building its endpoint (no reactor is
    needed for that, and none is imported).  Returns no host and the port
    (0 for ``unix:``), for the node id and messages.
    """
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(object(), text)
    except (ValueError, TypeError, KeyError, OSError, ImportError) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise ConfigError("bind", text, f"not a valid endpoint description: {reason}")
    first = text.split(":")[1]
    return "", int(first) if first.isdigit() else 0


def _bind(text: str) -> Tuple[str, int]:
    match = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})", text.strip())
    if not match:
        raise ConfigError("bind", text, "must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080")
    host = match.group(1) or match.group(2) or "0.0.0.0"
    port = int(match.group(3))
    if port > 65535:
        raise ConfigError("bind", text, "the port must be at most 65535")
    return host, port


def _queue_name(name: str, text: str) -> str:
    if not text:
        return ""
    try:
        check_queue_name(text)
    except InvalidName as e:
        raise ConfigError(name, text, str(e))
    return text


def _ca_file(name: str, path: str) -> str:
    """A readable PEM file holding at least one certificate ('' stays '')."""
    path = path.strip()
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            pem = f.read()
    except OSError as e:
        raise ConfigError(name, path, f"cannot read the file: {e.strerror or e}")
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ConfigError(name, path, "holds no PEM certificate")
    return os.path.abspath(path)


def load(
    options: Mapping[str, Optional[str]],
    environ: Optional[Mapping[str, str]] = None,
) -> Config:
    """
    Build the configuration from command-line ``options`` (setting name ->
    value, None when not given) and ``environ``.

    @raise ConfigError: for the first bad value.
    """
    if environ is None:
        environ = os.environ
    raw: Dict[str, str] = {}
    for setting in SETTINGS:
        value = options.get(setting.name)
        if value is None:
            value = environ.get(setting.env)
        if value is None:
            value = setting.default
        raw[setting.name] = value
    debug = bool(environ.get("DEBUG"))

    for name in ("mysql_dsn", "queue_mysql_dsn", "repository_mysql_dsn"):
        if raw[name]:
            try:
                parse_dsn(raw[name])
            except ValueError as e:
                raise ConfigError(name, "***", str(e))
    queue_dsn = raw["queue_mysql_dsn"] or raw["mysql_dsn"]
    repository_dsn = raw["repository_mysql_dsn"] or raw["mysql_dsn"]

    driver = raw["driver"].strip().lower()
    if not driver:
        driver = "mysql" if (queue_dsn or repository_dsn) else "sqlite"
    if driver == "inmemory":
        driver = "in-memory"
    if driver not in DRIVERS:
        raise ConfigError("driver", raw["driver"], "must be mysql, sqlite or in-memory")
    if driver == "mysql" and not (queue_dsn and repository_dsn):
        raise ConfigError(
            "mysql_dsn", "", "the mysql driver needs a DSN (mysql_dsn, or both queue_mysql_dsn and repository_mysql_dsn)"
        )
    if driver == "sqlite" and not raw["sqlite_path"].strip():
        raise ConfigError("sqlite_path", raw["sqlite_path"], "must name a file")
    raw["driver"] = driver

    bind_endpoint = raw["bind"].strip() if raw["bind"].strip().startswith(ENDPOINT_PREFIXES) else ""
    host, port = _bind_endpoint(bind_endpoint) if bind_endpoint else _bind(raw["bind"])
    keep_alive = _bool("keep_alive", raw["keep_alive"])
    dispatch_keep_alive = (
        _bool("dispatch_keep_alive", raw["dispatch_keep_alive"])
        if raw["dispatch_keep_alive"].strip()
        else keep_alive
    )
    user_agent = raw["dispatch_user_agent"] or f"Fireworq/{__version__}"
    if any(c in user_agent for c in "\r\n\0"):
        raise ConfigError("dispatch_user_agent", user_agent, "must be a single line")
    queue_log_level = _level("queue_log_level", raw["queue_log_level"], debug)
    error_log_level = _level("error_log_level", raw["error_log_level"], debug)
    lease_ttl = _int("lease_ttl", raw["lease_ttl"], 300, 3_600_000)
    auth = _bool("auth", raw["auth"])
    admin_token = _admin_token(raw["admin_token"], raw["admin_token_file"])
    workers = _int("workers", raw["workers"], 1, 256)
    if workers > 1 and driver != "mysql":
        raise ConfigError("workers", raw["workers"], f"more than one process needs the mysql driver (the {driver} store belongs to one process)")
    if workers > 1 and bind_endpoint:
        raise ConfigError("workers", raw["workers"], "more than one process needs a host:port bind, not an endpoint description")

    return Config(
        bind_host=host,
        bind_port=port,
        bind_endpoint=bind_endpoint,
        driver=driver,
        mysql_dsn=raw["mysql_dsn"],
        queue_mysql_dsn=queue_dsn,
        repository_mysql_dsn=repository_dsn,
        sqlite_path=raw["sqlite_path"].strip(),
        queue_default=_queue_name("queue_default", raw["queue_default"]),
        queue_default_polling_interval=_int(
            "queue_default_polling_interval", raw["queue_default_polling_interval"], 1, 3_600_000
        ),
        queue_default_max_workers=_int(
            "queue_default_max_workers", raw["queue_default_max_workers"], 1, 100_000
        ),
        config_refresh_interval=_int(
            "config_refresh_interval", raw["config_refresh_interval"], 10, 3_600_000
        ),
        lease_ttl=lease_ttl,
        shutdown_timeout=_int("shutdown_timeout", raw["shutdown_timeout"], 0, 86_400),
        keep_alive=keep_alive,
        dispatch_keep_alive=dispatch_keep_alive,
        dispatch_max_conns_per_host=_int(
            "dispatch_max_conns_per_host", raw["dispatch_max_conns_per_host"], 0, 100_000
        ),
        dispatch_idle_conn_timeout=_int(
            "dispatch_idle_conn_timeout", raw["dispatch_idle_conn_timeout"], 0, 86_400 * 365
        ),
        dispatch_user_agent=user_agent,
        dispatch_ca_file=_ca_file("dispatch_ca_file", raw["dispatch_ca_file"]),
        signing_overlap=_int("signing_overlap", raw["signing_overlap"], 0, 366 * 86_400),
        max_request_body=_int("max_request_body", raw["max_request_body"], 1024, 1 << 30),
        access_log=raw["access_log"],
        access_log_tag=raw["access_log_tag"],
        queue_log=raw["queue_log"],
        queue_log_tag=raw["queue_log_tag"],
        queue_log_level=queue_log_level,
        error_log=raw["error_log"],
        error_log_level=error_log_level,
        pid=raw["pid"],
        request_header_timeout=_int("request_header_timeout", raw["request_header_timeout"], 0, 3600),
        request_body_timeout=_int("request_body_timeout", raw["request_body_timeout"], 0, 86_400),
        max_connections=_int("max_connections", raw["max_connections"], 0, 1_000_000),
        idempotency_window=_int("idempotency_window", raw["idempotency_window"], 1, 366 * 86_400),
        job_lifetime=_int("job_lifetime", raw["job_lifetime"], 0, 2**32 - 1),
        auth=auth,
        admin_token=admin_token,
        admin_token_file=raw["admin_token_file"],
        metrics_public=_bool("metrics_public", raw["metrics_public"]),
        workers=workers,
        raw=raw,
    )
