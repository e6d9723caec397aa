// What Java hands to an application, for each request stored under the directory given
// (case/headers.json and case/body, as for parse.js), in one JVM: Apache commons-fileupload
// ("commons-fileupload": every item's field name, file name and bytes, including the files of a
// multipart/mixed part, which the library unpacks), Jackson's ObjectMapper.readTree
// ("jackson": every text node and field name) and the JDK's DOM with the default
// DocumentBuilderFactory ("jdk-dom": every element's getTextContent() and attribute value).
// Prints one JSON object: { case: { parser: [base64 items] } }.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.InputStream;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import javax.xml.parsers.DocumentBuilderFactory;
import org.apache.commons.fileupload.FileItem;
import org.apache.commons.fileupload.FileUpload;
import org.apache.commons.fileupload.FileUploadBase;
import org.apache.commons.fileupload.ParameterParser;
import org.apache.commons.fileupload.RequestContext;
import org.apache.commons.fileupload.UploadContext;
import org.apache.commons.fileupload.disk.DiskFileItemFactory;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NamedNodeMap;
import org.w3c.dom.NodeList;
import org.xml.sax.ErrorHandler;
import org.xml.sax.SAXParseException;

public class ParseJava {
    static final ObjectMapper MAPPER = new ObjectMapper();

    static final MethodHandle PARSE_REQUEST;

    static {
        try {
            PARSE_REQUEST = MethodHandles.publicLookup().findVirtual(FileUploadBase.class,
                    "parseRequest", MethodType.methodType(List.class, RequestContext.class));
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    // What a servlet container hands commons-fileupload (ServletRequestContext) for this request:
    // headers are Latin-1 text in a servlet container, as they were recorded.
    static final class Context implements UploadContext {
        final String contentType;
        final byte[] body;

        Context(String contentType, byte[] body) {
            this.contentType = contentType;
            this.body = body;
        }

        public String getCharacterEncoding() {
            if (contentType == null) return null;
            ParameterParser p = new ParameterParser();
            p.setLowerCaseNames(true);
            return p.parse(contentType, ';').get("charset");
        }

        public String getContentType() {
            return contentType;
        }

        @Deprecated
        public int getContentLength() {
            return body.length;
        }

        public long contentLength() {
            return body.length;
        }

        public InputStream getInputStream() {
            return new ByteArrayInputStream(body);
        }
    }

    static List<byte[]> fileupload(String contentType, byte[] body) throws Exception {
        List<byte[]> items = new ArrayList<>();
        // FileUpload is ServletFileUpload without the servlet API: parseRequest(RequestContext),
        // called through a method handle since javac wants javax.servlet to tell it from the
        // deprecated parseRequest(HttpServletRequest), and there is no servlet API here.
        FileUpload upload = new FileUpload(new DiskFileItemFactory());
        List<?> parsed;
        try {
            parsed = (List<?>) PARSE_REQUEST.invoke(upload, new Context(contentType, body));
        } catch (Exception e) {
            throw e;
        } catch (Throwable e) {
            throw new Exception(e);
        }
        for (Object o : parsed) {
            FileItem item = (FileItem) o;
            if (item.getFieldName() != null) items.add(utf8(item.getFieldName()));
            if (item.getName() != null) items.add(utf8(item.getName()));
            items.add(item.get());
            item.delete();
        }
        return items;
    }

    static void strings(JsonNode n, List<byte[]> into) {
        if (n == null) return;
        if (n.isTextual()) {
            into.add(utf8(n.textValue()));
        } else if (n.isArray()) {
            for (JsonNode x : n) strings(x, into);
        } else if (n.isObject()) {
            for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                into.add(utf8(e.getKey()));
                strings(e.getValue(), into);
            }
        }
    }

    static List<byte[]> jackson(byte[] body) throws Exception {
        List<byte[]> items = new ArrayList<>();
        strings(MAPPER.readTree(body), items);
        return items;
    }

    static List<byte[]> dom(byte[] body) throws Exception {
        List<byte[]> items = new ArrayList<>();
        var builder = DocumentBuilderFactory.newInstance().newDocumentBuilder();
        // Only so that a failed parse says nothing on stderr; fatal errors still end the parse.
        builder.setErrorHandler(new ErrorHandler() {
            public void warning(SAXParseException e) {}

            public void error(SAXParseException e) {}

            public void fatalError(SAXParseException e) throws SAXParseException {
                throw e;
            }
        });
        Document doc = builder.parse(new ByteArrayInputStream(body));
        NodeList all = doc.getElementsByTagName("*");
        for (int i = 0; i < all.getLength(); i++) {
            Element e = (Element) all.item(i);
            items.add(utf8(e.getTextContent()));
            NamedNodeMap attrs = e.getAttributes();
            for (int j = 0; j < attrs.getLength(); j++) {
                items.add(utf8(attrs.item(j).getNodeValue()));
            }
        }
        return items;
    }

    interface Parser {
        List<byte[]> parse() throws Exception;
    }

    static ArrayNode run(Parser p) {
        ArrayNode out = MAPPER.createArrayNode();
        List<byte[]> items;
        try {
            items = p.parse();
        } catch (Exception | StackOverflowError e) {
            return out;
        }
        for (byte[] b : items) out.add(Base64.getEncoder().encodeToString(b));
        return out;
    }

    public static void main(String[] args) throws Exception {
        File root = new File(args[0]);
        String[] names = root.list();
        Arrays.sort(names);
        ObjectNode out = MAPPER.createObjectNode();
        for (String name : names) {
            JsonNode headers = MAPPER.readTree(new File(new File(root, name), "headers.json"));
            byte[] body = Files.readAllBytes(new File(new File(root, name), "body").toPath());
            JsonNode type = headers.get("content-type");
            String ct = type != null && type.isTextual() ? type.textValue() : null;
            ObjectNode res = out.putObject(name);
            res.set("commons-fileupload", run(() -> fileupload(ct, body)));
            res.set("jackson", run(() -> jackson(body)));
            res.set("jdk-dom", run(() -> dom(body)));
        }
        MAPPER.writeValue(System.out, out);
    }
}
