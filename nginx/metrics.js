// nginx's own figures in Prometheus's text format (nginx/metrics-server.conf, /metrics/nginx),
// read from stub_status through an internal sub-request: connections by state, connections
// accepted and handled, requests. The names follow nginx-prometheus-exporter's, with _total on
// the counters.

var GAUGES = [
    ["active", /Active connections:\s+(\d+)/, "Open client connections, waiting ones included."],
    ["reading", /Reading:\s+(\d+)/, "Connections whose request header nginx is reading."],
    ["writing", /Writing:\s+(\d+)/, "Connections nginx is writing an answer to."],
    ["waiting", /Waiting:\s+(\d+)/, "Idle keep-alive connections."],
];
var TOTALS = /\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n/;

function line(name, type, help, value) {
    return "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
        name + " " + value + "\n";
}

function render(text) {
    var out = "";
    for (var i = 0; i < GAUGES.length; i++) {
        var found = GAUGES[i][1].exec(text);
        if (!found) {
            return null;
        }
        out += line("nginx_connections_" + GAUGES[i][0], "gauge", GAUGES[i][2], found[1]);
    }
    var totals = TOTALS.exec(text);
    if (!totals) {
        return null;
    }
    out += line("nginx_connections_accepted_total", "counter", "Client connections accepted.",
        totals[1]);
    out += line("nginx_connections_handled_total", "counter", "Client connections handled.",
        totals[2]);
    out += line("nginx_http_requests_total", "counter", "Client requests, sub-requests excluded.",
        totals[3]);
    return out + line("nginx_up", "gauge", "1: nginx answered its status.", 1);
}

// Then the per-status, per-scope and auth-cache counters that gateway/access_metrics.py keeps
// from nginx's access log; without them (that program down) stub_status's figures still come.
function nginx(r) {
    r.subrequest("/_stub_status", function (reply) {
        var body = reply.status === 200 ? render(reply.responseText || "") : null;
        if (body === null) {
            r.return(503, "# nginx's stub_status could not be read\n");
            return;
        }
        r.subrequest("/_access_metrics", function (counts) {
            var up = counts.status === 200 ? 1 : 0;
            body += up ? counts.responseText || "" : "";
            body += line("nginx_access_metrics_up", "gauge",
                "1: the access log counters (nginx_http_responses_total...) answered.", up);
            r.headersOut["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8";
            r.return(200, body);
        });
    });
}

export default { nginx: nginx, render: render };
