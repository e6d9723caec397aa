//! The DOCTYPE: attribute defaults, and entities expanded within limits or refused.

use super::super::entities::{MAX_DECLARED, MAX_NESTING};
use super::*;

/// `doc` after a DOCTYPE whose internal subset is `subset`.
fn with(subset: &str, doc: &str) -> Vec<u8> {
    format!("<!DOCTYPE a [{subset}]>{doc}").into_bytes()
}

fn refused_with(subset: &str, doc: &str) -> (u16, String) {
    refused(&with(subset, doc))
}

#[test]
fn a_doctype_without_entities_is_read() {
    let doc = b"<!DOCTYPE a [<!-- <!ATTLIST a z CDATA 'no'> --><!ELEMENT a (#PCDATA)>\
        <!ATTLIST a id ID #REQUIRED k (x|y) 'x' m CDATA #FIXED \"&#x58;5\">]><a>t</a>";
    assert_eq!(
        read(doc),
        [
            pair("attribute \"k\" of \"a\"", "x"),
            pair("attribute \"m\" of \"a\"", "X5"),
            pair("element \"a\"", "t"),
        ]
    );
}

#[test]
fn an_illustrator_svg_is_read_with_its_namespace_entities() {
    let svg = br##"<?xml version="1.0" encoding="utf-8"?>
<!-- Generator: Adobe Illustrator 24.0.0, SVG Export Plug-In . SVG Version: 6.00 Build 0)  -->
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd" [
	<!ENTITY ns_extend "http://ns.adobe.com/Extensibility/1.0/">
	<!ENTITY ns_ai "http://ns.adobe.com/AdobeIllustrator/10.0/">
	<!ENTITY ns_graphs "http://ns.adobe.com/Graphs/1.0/">
	<!ENTITY ns_vars "http://ns.adobe.com/Variables/1.0/">
	<!ENTITY ns_imrep "http://ns.adobe.com/ImageReplacement/1.0/">
	<!ENTITY ns_sfw "http://ns.adobe.com/SaveForWeb/1.0/">
	<!ENTITY ns_custom "http://ns.adobe.com/GenericCustomNamespace/1.0/">
	<!ENTITY ns_adobe_xpath "http://ns.adobe.com/XPath/1.0/">
]>
<svg version="1.1" id="Layer_1" xmlns:x="&ns_extend;" xmlns:i="&ns_ai;" xmlns:graph="&ns_graphs;"
	 xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" x="0px" y="0px"
	 viewBox="0 0 100 100" style="enable-background:new 0 0 100 100;" xml:space="preserve">
<switch>
	<foreignObject requiredExtensions="&ns_ai;" x="0" y="0" width="1" height="1">
		<i:pgfRef  xlink:href="#adobe_illustrator_pgf">
		</i:pgfRef>
	</foreignObject>
	<g i:extraneous="self">
		<rect x="10" y="10" fill="#FF0000" width="80" height="80"/>
	</g>
</switch>
<i:pgf  id="adobe_illustrator_pgf">
	<![CDATA[
	eJzsvWmTHMmRKPh9RPY/5HsjfBsGAzwFPwk4g8bQSBmz8H+8R2Z/A=
	]]>
</i:pgf>
</svg>
"##;
    let found = read(svg);
    let value = |label: &str| {
        let all: Vec<_> = found.iter().filter(|(l, _)| l == label).collect();
        assert_eq!(all.len(), 1, "{label}: {found:?}");
        all[0].1.clone()
    };
    assert_eq!(
        value("attribute \"requiredExtensions\" of \"foreignObject\""),
        "http://ns.adobe.com/AdobeIllustrator/10.0/"
    );
    assert_eq!(
        value("attribute \"style\" of \"svg\""),
        "enable-background:new 0 0 100 100;"
    );
    assert!(value("element \"i:pgf\"")
        .contains("eJzsvWmTHMmRKPh9RPY/5HsjfBsGAzwFPwk4g8bQSBmz8H+8R2Z/A="));
}

#[test]
fn base64_split_across_an_entity_is_seen_joined() {
    let doc = with("<!ENTITY e \"QUJD\">", "<a>&e;REVGR0g=</a>");
    assert_eq!(texts(&doc), ["QUJDREVGR0g="]);
    let doc = with("<!ENTITY e 'QUJD'>", "<a b='&e;REVG'>x&e;</a>");
    assert_eq!(
        texts(&doc),
        ["QUJDREVG", "xQUJD"],
        "single quotes, attributes"
    );
}

#[test]
fn entities_expand_within_entities() {
    let subset = "<!ENTITY f \"&e;&#x52;EVG\"><!ENTITY e \"QUJD\">";
    assert_eq!(texts(&with(subset, "<a>&f;R0g=</a>")), ["QUJDREVGR0g="]);
    // As the XML spec's example: `&#38;` is `&` in the replacement text, read again as a
    // reference; `&lt;` is kept for then.
    let subset = "<!ENTITY l \"&#38;#60;&lt;&#38;amp;\">";
    assert_eq!(texts(&with(subset, "<a>&l;</a>")), ["<<&"]);
}

#[test]
fn replacement_texts_are_read_as_the_jdk_reads_them() {
    // Line ends of the literal are normalized; a `\r` by reference is kept.
    let subset = "<!ENTITY r \"x\r\ny&#13;z\">";
    assert_eq!(texts(&with(subset, "<a>&r;</a>")), ["x\ny\rz"]);
    // The first declaration wins; the predefined entities keep their meaning.
    let subset = "<!ENTITY e \"1\"><!ENTITY e \"2\"><!ENTITY amp \"x\"><!ENTITY lt \"&#38;#60;\">";
    assert_eq!(texts(&with(subset, "<a>&e;&amp;&lt;</a>")), ["1&<"]);
    // Attribute defaults expand entities too.
    let subset = "<!ENTITY e \"QUJD\"><!ATTLIST a b CDATA \"&e;x\">";
    assert_eq!(texts(&with(subset, "<a/>")), ["QUJDx"]);
    // A parameter entity declared (not referenced) is skipped.
    let subset = "<!ENTITY % p \"<!ENTITY e 'no'>\"><!ENTITY e \"yes\">";
    assert_eq!(texts(&with(subset, "<a>&e;</a>")), ["yes"]);
}

#[test]
fn undeclared_entities_are_refused() {
    let (status, reason) = refused(b"<a>x&e;</a>");
    assert_eq!(status, 400);
    assert!(reason.contains("\"e\""), "{reason}");
    refused(b"<a b='&ext;'/>");
    // Entities of an external DTD are not known.
    refused(b"<!DOCTYPE a SYSTEM \"http://x/a.dtd\"><a>&ext;</a>");
    // A declaration in a comment declares nothing.
    assert_eq!(
        refused_with("<!-- <!ENTITY e 'x'> -->", "<a>&e;</a>").0,
        400
    );
}

#[test]
fn external_entities_are_refused_when_referenced() {
    let system = "<!ENTITY x SYSTEM \"http://x/\">";
    let (status, reason) = refused_with(system, "<a>&x;</a>");
    assert_eq!(status, 400);
    assert!(reason.contains("external entity \"x\""), "{reason}");
    let public = "<!ENTITY x PUBLIC \"-//x//EN\" 'http://x/'>";
    assert_eq!(refused_with(public, "<a b='&x;'/>").0, 400);
    let unparsed = "<!NOTATION gif SYSTEM \"image/gif\"><!ENTITY u SYSTEM \"u.gif\" NDATA gif>";
    assert_eq!(refused_with(unparsed, "<a>&u;</a>").0, 400);
    let within = "<!ENTITY x SYSTEM \"http://x/\"><!ENTITY i \"a&x;\">";
    assert_eq!(refused_with(within, "<a>&i;</a>").0, 400);
    // Declared but not referenced: read.
    let both = format!("{system}<!ENTITY e \"QUJD\">");
    assert_eq!(texts(&with(&both, "<a>t&e;</a>")), ["tQUJD"]);
    assert_eq!(texts(&with(unparsed, "<a>t</a>")), ["t"]);
}

#[test]
fn parameter_entity_references_are_refused() {
    for subset in [
        "<!ENTITY % p \"<!ENTITY e 'x'>\"> %p;",
        "<!ENTITY % p SYSTEM \"http://x/\"> %p;",
        "<!ENTITY % q \"x\"><!ENTITY e \"%q;\">",
        "<!ENTITY % q \"x\"><!ENTITY % p \"%q;\">",
        "<!ENTITY % q \"CDATA\"><!ATTLIST a b %q; 'x'>",
        "<!ENTITY % q \"x\"><!ELEMENT a (%q;)>",
    ] {
        let (status, reason) = refused_with(subset, "<a/>");
        assert_eq!(status, 400, "{subset}");
        assert!(reason.contains("parameter entity"), "{reason}");
    }
    // A `%` in an attribute default, a comment or a processing instruction is no reference.
    let subset = "<!ATTLIST a b CDATA '%q;'><!-- %q; --><?pi %q;?>";
    assert_eq!(texts(&with(subset, "<a/>")), ["%q;"]);
}

#[test]
fn markup_in_a_replacement_text_is_refused() {
    for subset in [
        "<!ENTITY m \"<b>x</b>\">",
        "<!ENTITY m \"&#60;b/>\">",
        "<!ENTITY m \"<![CDATA[x]]>\">",
        "<!ENTITY n \"<b/>\"><!ENTITY m \"x&n;\">",
    ] {
        let (status, reason) = refused_with(subset, "<a>&m;</a>");
        assert_eq!(status, 400, "{subset}");
        assert!(reason.contains("markup"), "{reason}");
        assert_eq!(refused_with(subset, "<a b='&m;'/>").0, 400, "{subset}");
        // Declared but not referenced: read.
        assert_eq!(texts(&with(subset, "<a>t</a>")), ["t"]);
    }
}

#[test]
fn entities_referencing_themselves_are_refused() {
    for subset in [
        "<!ENTITY s \"x&s;\">",
        "<!ENTITY s \"&t;\"><!ENTITY t \"&u;\"><!ENTITY u \"&s;\">",
    ] {
        let (status, reason) = refused_with(subset, "<a>&s;</a>");
        assert_eq!(status, 400, "{subset}");
        assert!(reason.contains("references itself"), "{reason}");
        assert_eq!(texts(&with(subset, "<a>t</a>")), ["t"], "unreferenced");
    }
}

#[test]
fn a_malformed_entity_is_malformed_where_referenced() {
    let subset = "<!ENTITY e \"&#0;\"><!ENTITY f \"a&b\">";
    assert_eq!(texts(&with(subset, "<a>x&e;y</a>")), ["x"]);
    assert_eq!(texts(&with(subset, "<a>x&f;y</a>")), ["x"]);
    assert_eq!(texts(&with(subset, "<a>x</a>")), ["x"], "unreferenced");
}

#[test]
fn billion_laughs_are_over_the_limit() {
    let mut subset = String::from("<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".into()
        } else {
            format!("lol{}", i - 1)
        };
        subset += &format!("<!ENTITY lol{i} \"{}\">", format!("&{prev};").repeat(10));
    }
    let (status, reason) = refused_with(&subset, "<lolz>&lol9;</lolz>");
    assert_eq!(status, 413);
    assert!(reason.contains("8 times the document's size"), "{reason}");
    assert_eq!(refused_with(&subset, "<lolz a='&lol9;'/>").0, 413);
    // Empty entities cost their references.
    let subset = subset.replace("\"lol\"", "\"\"");
    assert_eq!(refused_with(&subset, "<lolz>&lol9;</lolz>").0, 413);
    // A big entity referenced often from the document itself.
    let subset = format!("<!ENTITY b \"{}\">", "QUJD".repeat(25_000));
    let doc = format!("<a>{}</a>", "&b;".repeat(1000));
    assert_eq!(refused_with(&subset, &doc).0, 413);
    // Within the limit: read (the JDK's 100 000 bytes of entities fit).
    let doc = format!("<a>{}</a>", "&b;".repeat(10));
    assert_eq!(texts(&with(&subset, &doc))[0].len(), 1_000_000);
}

#[test]
fn entities_nest_at_most_16_deep() {
    let mut subset = String::from("<!ENTITY e0 \"x\">");
    for i in 1..=MAX_NESTING {
        subset += &format!("<!ENTITY e{i} \"&e{};\">", i - 1);
    }
    let deepest = format!("<a>&e{};</a>", MAX_NESTING - 1);
    assert_eq!(texts(&with(&subset, &deepest)), ["x"]);
    let (status, reason) = refused_with(&subset, &format!("<a>&e{MAX_NESTING};</a>"));
    assert_eq!(status, 413);
    assert!(reason.contains("nested over 16 deep"), "{reason}");
}

#[test]
fn entity_declarations_are_counted() {
    let declare = |n: usize| {
        let subset: String = (0..n).map(|i| format!("<!ENTITY e{i} 'x'>")).collect();
        with(&subset, "<a>&e0;</a>")
    };
    let found = read_pieces(&[&declare(MAX_DECLARED)], 10).expect("read");
    assert_eq!(found, [pair("element \"a\"", "x")]);
    match read_pieces(&[&declare(MAX_DECLARED + 1)], 10) {
        Err(ScanError::Refused { status, reason }) => {
            assert_eq!(status, 413);
            assert_eq!(reason, "XML document: more than 10000 entity declarations");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_doctype_of_every_kind() {
    // As the fuzz target declares them.
    let subset = "<!ENTITY e \"QUJD\"><!ENTITY n \"&e;&#x52;&#38;#x45;VG\r\n\">\
        <!ENTITY f \"&n;&n;\"><!ENTITY c \"&d;\"><!ENTITY d \"x&c;\">\
        <!ENTITY x SYSTEM \"http://x/\"><!ENTITY u SYSTEM \"u\" NDATA n>\
        <!ENTITY m \"<b/>\"><!ENTITY z \"\"><!ENTITY e \"ignored\">\
        <!ATTLIST a d CDATA \"&e;&lt;\">";
    assert_eq!(
        read(&with(subset, "<a>&f;&z;</a>")),
        [
            pair("attribute \"d\" of \"a\"", "QUJD<"),
            pair("element \"a\"", "QUJDREVG\nQUJDREVG\n"),
        ]
    );
    assert!(read(&with(subset, "<a>&z;</a>")).len() == 1, "empty");
    for name in ["c", "d", "x", "u", "m"] {
        let doc = format!("<a>&{name};</a>");
        assert_eq!(refused_with(subset, &doc).0, 400, "{name}");
    }
}
