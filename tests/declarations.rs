//! The directive declarations (`src/conf/declared.rs`, read here with a `directives!` of the
//! test's own) against the real nginx with the module and against the operator's reference
//! (`docs/directives.md`): every directive is accepted at every level it claims and refused at
//! the others, an inner level inherits every value an outer one sets, and the reference lists
//! exactly the declared directives, in order, with the declared syntax, default and context.

mod common;
use common::*;

struct Declared {
    name: &'static str,
    ty: &'static str,
    context: &'static str,
    syntax: &'static str,
    default: &'static str,
    example: &'static str,
}

macro_rules! directives {
    ($(
        $name:ident {
            $field:ident : $ty:ty = ($($default:expr)?), $ctx:ident, $args:ident,
            $set:path $([$post:expr])?,
            $syntax:literal, $default_text:literal, $example:literal, $doc:literal
        }
    )*) => {
        const DECLARED: &[Declared] = &[$(
            Declared {
                name: stringify!($name),
                ty: stringify!($ty),
                context: stringify!($ctx),
                syntax: $syntax,
                default: $default_text,
                example: $example,
            },
        )*];
    };
}

include!("../src/conf/declared.rs");

const LEVELS: [&str; 3] = ["http", "server", "location"];

fn levels_of(d: &Declared) -> &'static [&'static str] {
    match d.context {
        "ANY" => &LEVELS,
        "LOC" => &["location"],
        "MAIN" => &["http"],
        other => panic!("{}: unknown context {other}", d.name),
    }
}

fn line(d: &Declared) -> String {
    if d.example.is_empty() {
        format!("{};", d.name)
    } else {
        format!("{} {};", d.name, d.example)
    }
}

/// An http block with `directive` at `level` (and a scanner at the http level, unless the
/// directive is the scanner).
fn config_with(d: &Declared, level: &str) -> String {
    let pass = if d.name == "ometascan_pass" {
        ""
    } else {
        "ometascan_pass http://127.0.0.1:9;"
    };
    let at = |l: &str| if l == level { line(d) } else { String::new() };
    format!(
        "{pass} {}\nserver {{ listen 127.0.0.1:%PORT%; {}\n location / {{ {} }} }}",
        at("http"),
        at("server"),
        at("location")
    )
}

#[test]
fn every_directive_is_accepted_at_every_level_it_claims_and_refused_at_the_others() {
    for d in DECLARED {
        for level in LEVELS {
            let c = nginx::check_http(&config_with(d, level));
            if levels_of(d).contains(&level) {
                assert!(c.ok, "{} at {level}: {}", d.name, c.output);
            } else {
                assert!(!c.ok, "{} accepted at {level}", d.name);
                assert!(c.output.contains("is not allowed here"), "{}", c.output);
            }
        }
    }
}

/// What the module says it merged for the innermost level (debug builds print it when
/// `OMETASCAN_CONF_DUMP` is set): the directives set there, own or inherited.
fn merged_at_location(http: &str) -> Vec<String> {
    let c = nginx::check_http_env(http, &[("OMETASCAN_CONF_DUMP", "1")]);
    assert!(c.ok, "{}", c.output);
    let last = c
        .output
        .lines()
        .filter_map(|l| l.split("ometascan merged level:").nth(1))
        .next_back()
        .unwrap_or_else(|| panic!("no dump: {}", c.output))
        .to_string();
    last.split_whitespace().map(str::to_string).collect()
}

#[test]
fn an_inner_level_inherits_every_value_an_outer_one_sets() {
    let bare = merged_at_location(&config_with(&DECLARED[0], "none"));
    // Directives that keep no value of their own (`Option<()>`) have nothing to inherit.
    for d in DECLARED.iter().filter(|d| !d.ty.contains("()")) {
        for outer in ["http", "server"] {
            if !levels_of(d).contains(&outer) {
                continue;
            }
            let merged = merged_at_location(&config_with(d, outer));
            assert!(
                merged.iter().any(|n| n == d.name),
                "{} set at {outer} is not inherited by the location: {merged:?}",
                d.name
            );
        }
        // Its twin: not set anywhere, the location has no value of its own for it.
        if d.name != "ometascan_pass" {
            assert!(
                !bare.iter().any(|n| n == d.name),
                "{} set by nobody",
                d.name
            );
        }
    }
}

#[test]
fn the_reference_lists_exactly_the_declared_directives_with_their_syntax_default_and_context() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/directives.md")).unwrap();
    let mut documented = Vec::new();
    let mut lines = doc.lines();
    while let Some(l) = lines.next() {
        let Some(name) = l.strip_prefix("## ") else {
            continue;
        };
        let block: Vec<&str> = lines
            .by_ref()
            .skip_while(|l| l.trim() != "```")
            .skip(1)
            .take_while(|l| l.trim() != "```")
            .collect();
        documented.push((name.to_string(), block.join("\n")));
    }
    let declared: Vec<&str> = DECLARED.iter().map(|d| d.name).collect();
    let names: Vec<&str> = documented.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, declared, "the reference's directives, in order");
    for (d, (_, block)) in DECLARED.iter().zip(&documented) {
        let syntax = if d.syntax.is_empty() {
            format!("{};", d.name)
        } else {
            format!("{} {};", d.name, d.syntax)
        };
        let default = if d.default == "—" {
            "—".to_string()
        } else {
            format!("{} {};", d.name, d.default)
        };
        let context = levels_of(d).join(", ");
        let expected = format!("Syntax:  {syntax}\nDefault: {default}\nContext: {context}");
        assert_eq!(block, &expected, "{}", d.name);
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("docs/directives.md"),
        "the README points to the reference"
    );
}

/// The default the reference shows is the default the module applies: a location where
/// nothing is set resolves every directive with a default to its declared text.
#[test]
fn every_declared_default_is_the_value_a_level_that_sets_nothing_resolves() {
    let c = nginx::check_http_env(
        "server { listen 127.0.0.1:%PORT%; location / { } }",
        &[("OMETASCAN_CONF_DUMP", "1")],
    );
    assert!(c.ok, "{}", c.output);
    let resolved: Vec<(String, String)> = c
        .output
        .lines()
        .filter_map(|l| l.split("ometascan resolved: ").nth(1))
        .next_back()
        .unwrap_or_else(|| panic!("no dump: {}", c.output))
        .split('|')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let with_defaults: Vec<&Declared> = DECLARED.iter().filter(|d| d.default != "—").collect();
    for d in &with_defaults {
        let got = resolved.iter().find(|(k, _)| k == d.name);
        match got {
            Some((_, v)) => match (millis(v), millis(d.default)) {
                (Some(a), Some(b)) => assert_eq!(a, b, "{}: {v} and {}", d.name, d.default),
                _ => assert_eq!(v, d.default, "{}", d.name),
            },
            // A default that depends on another directive (the scanner's host).
            None => assert_eq!(d.name, "ometascan_ssl_name"),
        }
    }
    assert_eq!(resolved.len(), with_defaults.len() - 1, "{resolved:?}");
}

/// An nginx time (`60s`, `10m`, `500ms`) in milliseconds; `None` for anything else.
fn millis(t: &str) -> Option<u64> {
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let n: u64 = t[..digits].parse().ok()?;
    let unit = match &t[digits..] {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    Some(n * unit)
}
