# What Ruby hands to an application, for each request stored under the directory given
# (case/headers.json and case/body, as for parse.js): Rack::Request#POST ("rack": every key and
# value of the nested params, uploaded files' names and contents), as Rails and Sinatra read
# forms, and JSON.parse ("ruby-json": every string, keys too). Prints one JSON object:
# { case: { parser: [base64 items] } }.
require "base64"
require "json"
require "rack"

def items_of(v, into)
  case v
  when String
    into << v.b
  when Array
    v.each { |x| items_of(x, into) }
  when Hash
    if v[:tempfile]
      into << v[:filename].to_s.b if v[:filename]
      v[:tempfile].rewind
      into << v[:tempfile].read.b
      v[:tempfile].close!
    else
      v.each do |k, x|
        into << k.to_s.b
        items_of(x, into)
      end
    end
  end
end

# The header values were recorded as Latin-1 text: these are their bytes again.
def latin1(s)
  s.encode(Encoding::ISO_8859_1).b
rescue EncodingError
  s.b
end

def rack(headers, body)
  opts = { method: "POST", input: body.dup }
  ct = headers["content-type"]
  # No Content-Type at all: Rack reads the body as a url-encoded form.
  opts["CONTENT_TYPE"] = latin1(ct) if ct && !ct.empty?
  env = Rack::MockRequest.env_for("/", opts)
  items = []
  items_of(Rack::Request.new(env).POST, items)
  items
end

def ruby_json(body)
  items = []
  items_of(JSON.parse(body.dup), items)
  items
end

root = ARGV[0]
out = {}
Dir.children(root).sort.each do |name|
  headers = JSON.parse(File.read(File.join(root, name, "headers.json")))
  body = File.binread(File.join(root, name, "body"))
  out[name] = {}
  parsers = { "rack" => -> { rack(headers, body) }, "ruby-json" => -> { ruby_json(body) } }
  parsers.each do |parser, f|
    items = begin
      f.call
    rescue StandardError, SystemStackError
      []
    end
    out[name][parser] = items.map { |b| Base64.strict_encode64(b) }
  end
end
$stdout.write(JSON.generate(out))
