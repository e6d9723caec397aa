// Every directive of the module, declared once, in the order of the operator's reference
// (docs/directives.md). `directives!` (conf/table.rs) makes of this the command table, the
// level's configuration struct, its inheritance and the defaults; tests/declarations.rs
// reads the same list to check the reference and every level.
//
// Each entry: the directive, then its field and how the level keeps it (conf/slot.rs:
// `Option<T>`: our handler parses it; `Flag`, `Msec`, `Num`: nginx's own flag, msec and num
// slot setters do; `Option<()>`: the directive keeps no value of its own), its default (empty
// parentheses: none, the directive is off until set), the levels it is allowed at (ANY: http,
// server, location), nginx's argument shape, the handler (a slot setter with its `post` check
// in brackets), the syntax and default as the reference shows them, an example argument, a
// one-line doc.
directives! {
    ometascan_pass {
        pass: Option<Pass> = (), ANY, NGX_CONF_TAKE1, set_pass,
        "URL | off", "—", "http://127.0.0.1:9",
        "The scanner that scans requests of this level."
    }
    ometascan_methods {
        methods: Option<MethodSet> = (MethodSet::default()), ANY, NGX_CONF_1MORE, set_methods,
        "METHOD ... [any_with_body]", "GET HEAD POST PUT PATCH DELETE any_with_body", "POST PUT",
        "The requests that are scanned."
    }
    ometascan_connect_timeout {
        connect_timeout: Msec = (DEFAULT_TIMEOUT), ANY, NGX_CONF_TAKE1, ngx_conf_set_msec_slot[CONNECT],
        "time", "60s", "5s",
        "How long connecting to the scanner may take."
    }
    ometascan_send_timeout {
        send_timeout: Msec = (DEFAULT_TIMEOUT), ANY, NGX_CONF_TAKE1, ngx_conf_set_msec_slot[ABOVE_ZERO],
        "time", "60s", "5s",
        "The longest pause between two writes to the scanner."
    }
    ometascan_read_timeout {
        read_timeout: Msec = (DEFAULT_TIMEOUT), ANY, NGX_CONF_TAKE1, ngx_conf_set_msec_slot[ABOVE_ZERO],
        "time", "60s", "1d",
        "The longest pause between two reads from the scanner."
    }
    ometascan_x_forwarded_for {
        x_forwarded_for: Flag = (false), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "off", "on",
        "Appends the client address to X-Forwarded-For for the scanner."
    }
    ometascan_intercept_errors {
        intercept_errors: Flag = (false), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "off", "on",
        "Answers a block with the location's error_page for its status."
    }
    ometascan_allow_bad_request_traffic {
        allow_bad_request: Option<bool> = (false), ANY, NGX_CONF_FLAG, set_allow_bad_request,
        "on | off", "off", "off",
        "Forwards a request unscanned when the scanner answers 400 (for testing)."
    }
    ometascan_set_header {
        set_headers: Option<Vec<SetHeader>> = (), ANY, NGX_CONF_TAKE2, set_set_header,
        "field value", "—", "X-Key v",
        "Adds, replaces or removes a header of the request sent to the scanner."
    }
    ometascan_pre_cache {
        pre_cache: Flag = (false), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "off", "on",
        "Forwards the module's own copy of an allowed body, whatever the scanner sent back."
    }
    ometascan_pre_cache_size {
        pre_cache_size: Option<()> = (), ANY, NGX_CONF_TAKE1, set_pre_cache_size,
        "size", "—", "1m",
        "Deprecated: accepted with a warning, no effect."
    }
    ometascan_ssl_trusted_certificate {
        ssl_trusted_certificate: Option<String> = (), ANY, NGX_CONF_TAKE1, set_ssl_trusted_certificate,
        "file", "—", "/etc/ssl/certs/ca-certificates.crt",
        "The CA certificates (PEM) a TLS scanner's certificate is verified with."
    }
    ometascan_ssl_verify {
        ssl_verify: Flag = (false), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "off", "off",
        "Verifies the TLS scanner's certificate."
    }
    ometascan_ssl_verify_depth {
        ssl_verify_depth: Num = (1), ANY, NGX_CONF_TAKE1, ngx_conf_set_num_slot[VERIFY_DEPTH],
        "number", "1", "2",
        "The longest certificate chain accepted above the scanner's own."
    }
    ometascan_ssl_protocols {
        ssl_protocols: Option<Vec<TlsVersion>> = (vec![TlsVersion::Tls12, TlsVersion::Tls13]), ANY,
        NGX_CONF_1MORE, set_ssl_protocols,
        "[SSLv3] [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3]", "TLSv1.2 TLSv1.3", "TLSv1.2",
        "The TLS versions offered to the scanner."
    }
    ometascan_ssl_ciphers {
        ssl_ciphers: Option<Vec<Suite>> = (tls::TLS12_SUITES.to_vec()), ANY, NGX_CONF_TAKE1,
        set_ssl_ciphers,
        "ciphers", "DEFAULT", "HIGH",
        "The TLS 1.2 cipher suites offered, in OpenSSL's cipher-string syntax."
    }
    ometascan_ssl_session_reuse {
        ssl_session_reuse: Flag = (true), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "on", "off",
        "Resumes TLS sessions with the scanner."
    }
    ometascan_ssl_name {
        ssl_name: Option<String> = (), ANY, NGX_CONF_TAKE1, set_ssl_name,
        "name", "host of ometascan_pass", "scanner.example",
        "The name the scanner's certificate is verified against and SNI sends."
    }
    ometascan_ssl_server_name {
        ssl_server_name: Flag = (false), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "off", "on",
        "Sends the name with SNI."
    }
    ometascan_status {
        status: Option<()> = (), LOC, NGX_CONF_NOARGS, crate::status::set_status,
        "", "—", "",
        "This location answers with the module's status counters."
    }
    ometascan_log_blocked {
        log_blocked: Flag = (true), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "on", "off",
        "Logs each blocked request at notice, with the threat."
    }
    ometascan_keepalive {
        keepalive: Num = (DEFAULT_KEEPALIVE), ANY, NGX_CONF_TAKE1, ngx_conf_set_num_slot[KEEPALIVE],
        "number", "32", "0",
        "Idle connections kept per scanner server and worker."
    }
    ometascan_keepalive_timeout {
        keepalive_timeout: Msec = (DEFAULT_TIMEOUT), ANY, NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot[ABOVE_ZERO],
        "time", "60s", "10s",
        "How long an idle connection to a scanner is kept."
    }
    ometascan_clamd_fildes {
        clamd_fildes: Flag = (false), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "off", "on",
        "Hands a clamd on a local socket the file to scan instead of a stream of it."
    }
    ometascan_health_check {
        health_check: Option<HealthParams> = (), ANY, NGX_CONF_ANY, set_health_check,
        "[interval=time] [fails=number] [passes=number] [uri=uri] [timeout=time]", "—",
        "interval=1s fails=3",
        "Probes the scanner's servers from every worker and marks them down and up."
    }
    ometascan_bypass {
        bypass: Option<Vec<ComplexValue>> = (), ANY, NGX_CONF_1MORE, set_bypass,
        "string ...", "—", "$arg_x",
        "A request for which any value is non-empty and not 0 is not scanned."
    }
    ometascan_max_size {
        max_size: Option<(u64, OverSize)> = (), ANY, NGX_CONF_TAKE12, set_max_size,
        "size [over=reject | over=pass]", "—", "10m over=pass",
        "Bodies larger than size are refused (413) or forwarded unscanned."
    }
    ometascan_on_error {
        on_error: Option<OnError> = (OnError::Block), ANY, NGX_CONF_TAKE1, set_on_error,
        "block | pass", "block", "pass",
        "What a failed scan means: nothing forwarded, or the request forwarded unscanned."
    }
    ometascan_max_scans {
        max_scans: Option<MaxScans> = (), ANY, NGX_CONF_TAKE12, set_max_scans,
        "number [wait=time]", "—", "8 wait=1s",
        "At most number scans at once per worker, each waiting at most wait for its turn."
    }
    ometascan_multipart {
        multipart: Flag = (true), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "on", "off",
        "Scans what a backend's parser hands to the application, object by object."
    }
    ometascan_body_limits {
        body_limits: Option<BodyLimits> = (BodyLimits::default()), ANY, NGX_CONF_1MORE, set_body_limits,
        "[parts=number] [part_header=size] [fields=number] [objects=number] [decoded=size] [decode_time=time] [zstd_window=size] [depth=number]",
        "parts=10000 part_header=16k fields=1000000 objects=1000 decoded=1g decode_time=1m zstd_window=8m depth=10", "parts=50 objects=20 decoded=4g depth=4",
        "The bounds of reading a body into its objects; over one, 413."
    }
    ometascan_cache_zone {
        cache_zone: Option<()> = (), MAIN, NGX_CONF_TAKE1, crate::cache::zone::set_cache_zone,
        "name:size", "—", "verdicts:1m",
        "Declares a shared memory zone for the verdict cache."
    }
    ometascan_cache {
        cache: Option<CacheZone> = (CacheZone::Off), ANY, NGX_CONF_TAKE1, set_cache,
        "zone | off", "off", "off",
        "Looks each scanned object up in the zone and keeps the scanner's verdict there."
    }
    ometascan_cache_valid {
        cache_valid: Msec = (cache::DEFAULT_VALID), ANY, NGX_CONF_TAKE1, ngx_conf_set_msec_slot[ABOVE_ZERO],
        "time", "10m", "1m",
        "How long a verdict is given again."
    }
    ometascan_cache_revalidate {
        cache_revalidate: Msec = (cache::DEFAULT_REVALIDATE), ANY, NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot[ABOVE_ZERO],
        "time", "30s", "10s",
        "The longest time an ICAP service's ISTag is trusted without asking OPTIONS again."
    }
    ometascan_cache_redis {
        cache_redis: Option<Option<RedisSpec>> = (None), ANY, NGX_CONF_1MORE, set_cache_redis,
        "address:port ... [master=name] [db=number] [user=name] [password=text] [tls=on] [ssl_trusted_certificate=file] [ssl_verify=on | off] [ssl_name=name] [timeout=time] | off",
        "off", "off",
        "A Redis server as the verdict cache's second level."
    }
    ometascan_response {
        response: Flag = (false), ANY, NGX_CONF_FLAG, ngx_conf_set_flag_slot,
        "on | off", "off", "on",
        "Scans responses before the client gets any of them."
    }
    ometascan_response_pass {
        response_pass: Option<Pass> = (), ANY, NGX_CONF_TAKE1, set_response_pass,
        "URL | off", "—", "icap://127.0.0.1:1344/respmod",
        "The scanner of responses, when not the one of ometascan_pass."
    }
    ometascan_response_statuses {
        response_statuses: Option<ResponseStatuses> = (ResponseStatuses::Any), ANY, NGX_CONF_1MORE, set_response_statuses,
        "any | code ...", "any", "200 203",
        "The statuses of 200 to 599 whose responses are scanned."
    }
    ometascan_response_max_size {
        response_max_size: Option<(u64, OverSize)> = (), ANY, NGX_CONF_TAKE12, set_response_max_size,
        "size [over=reject | over=pass]", "—", "1g over=pass",
        "Responses larger than size are refused (502) or sent unscanned."
    }
    ometascan_response_bypass {
        response_bypass: Option<Vec<ComplexValue>> = (), ANY, NGX_CONF_1MORE, set_response_bypass,
        "string ...", "—", "$sent_http_x_no_scan",
        "A response for which any value is non-empty and not 0 is not scanned."
    }
    ometascan_pieces {
        pieces: Option<Option<Pieces>> = (None), ANY, NGX_CONF_1MORE, set_pieces,
        "tus | content_range | s3 | fields [parallel] ... spool=path [key=value offset=value | index=value chunk=value | number=value chunk=value total=value | count=value] [size=size] [space=size] [uploads=number] [expire=time] | off", "off",
        "tus spool=/tmp expire=1h",
        "Assembles files uploaded in pieces and scans each assembled file before it completes."
    }
}
