"""The parsers of Go (parse.go), Ruby's Rack (parse.rb), axum and multer (multer/), Java's
commons-fileupload, Jackson and DOM (ParseJava.java) and Node's built-in fetch Request
(parse_undici.js), built by scripts/install-difftest-deps.sh under target/difftest, over the
requests stored under a directory as for parse.js."""
import base64
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
JARS = ["commons-fileupload", "commons-io", "jackson-databind", "jackson-core",
        "jackson-annotations"]


def commands(deps, node):
    cp = ":".join([os.path.join(deps, "java")] + ["/usr/share/java/%s.jar" % j for j in JARS])
    return {
        "go": [os.path.join(deps, "go", "parse")],
        "ruby": ["ruby", os.path.join(HERE, "parse.rb")],
        "multer": [os.path.join(deps, "multer-target", "release", "difftest-multer")],
        # A DTD naming a URL makes the DOM fetch it: bound that, with no other change.
        "java": ["java", "-Dfile.encoding=UTF-8", "-Dsun.net.client.defaultConnectTimeout=3000",
                 "-Dsun.net.client.defaultReadTimeout=3000", "-cp", cp, "ParseJava"],
        "undici": [node, os.path.join(HERE, "parse_undici.js")],
    }


def run(root, deps, node):
    """{key: {parser: [bytes]}} from all of them."""
    out = {}
    procs = {name: subprocess.Popen(cmd + [root], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, cmd in commands(deps, node).items()}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=600)
        if p.returncode != 0:
            for q in procs.values():
                q.kill()
            sys.exit("%s parsers failed: %s" % (name, stderr.decode(errors="replace")[-2000:]))
        for key, res in json.loads(stdout).items():
            for parser, items in res.items():
                out.setdefault(key, {})[parser] = [base64.b64decode(x) for x in items]
    return out
