<?php
// What PHP hands to an application for the request php-cgi reads on standard input: every
// uploaded file ($_FILES), every form value ($_POST, nested arrays flattened) and every string
// of json_decode(php://input). Printed as JSON lists of base64 strings.
$out = ['files' => [], 'post' => [], 'json' => []];
$walk = function ($v, &$into) use (&$walk) {
    if (is_array($v)) {
        foreach ($v as $k => $x) {
            $into[] = base64_encode((string)$k);
            $walk($x, $into);
        }
    } elseif (is_string($v)) {
        $into[] = base64_encode($v);
    }
};
foreach ($_FILES as $f) {
    $names = (array)$f['tmp_name'];
    array_walk_recursive($names, function ($tmp) use (&$out) {
        if (is_string($tmp) && $tmp !== '' && is_file($tmp)) {
            $out['files'][] = base64_encode(file_get_contents($tmp));
        }
    });
}
$walk($_POST, $out['post']);
$input = file_get_contents('php://input');
if ($input !== false && $input !== '') {
    $out['post'][] = base64_encode($input);
    $j = json_decode($input, true);
    if ($j !== null) {
        $walk(is_array($j) ? $j : [$j], $out['json']);
    }
}
header('Content-Type: application/json');
echo json_encode($out);
