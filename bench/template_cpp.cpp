// Timing driver for bench/template_bench.py: the same invoice (partials form,
// invoice/flat.html) and data with two C++ Mustache engines from Debian,
// libmstch and kainjow-mustache.  Data is converted from JSON (jansson) once,
// before timing, as for every engine in this benchmark.
//
//   template_cpp mstch|kainjow DIR N   -> "ns_per_render bytes"
#include <jansson.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <kainjow/mustache.hpp>
#include <mstch/mstch.hpp>

static std::string slurp(const std::string &path)
{
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

static std::string scalar(json_t *v)
{
    if (json_is_string(v))
        return std::string(json_string_value(v), json_string_length(v));
    if (json_is_integer(v))
        return std::to_string(json_integer_value(v));
    if (json_is_real(v)) {
        char b[32];
        snprintf(b, sizeof b, "%g", json_real_value(v));
        return b;
    }
    return "";
}

static mstch::node to_mstch(json_t *v)
{
    if (json_is_object(v)) {
        mstch::map m;
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) m[k] = to_mstch(x);
        return m;
    }
    if (json_is_array(v)) {
        mstch::array a;
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) a.push_back(to_mstch(x));
        return a;
    }
    if (json_is_boolean(v))
        return json_is_true(v);
    return scalar(v);
}

using kdata = kainjow::mustache::data;
static kdata to_kainjow(json_t *v)
{
    if (json_is_object(v)) {
        kdata m{kdata::type::object};
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) m.set(k, to_kainjow(x));
        return m;
    }
    if (json_is_array(v)) {
        kdata a{kdata::type::list};
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) a.push_back(to_kainjow(x));
        return a;
    }
    if (json_is_boolean(v))
        return kdata{json_is_true(v) ? kdata::type::bool_true : kdata::type::bool_false};
    return kdata{scalar(v)};
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    std::string which = argv[1], dir = argv[2];
    long n = std::atol(argv[3]);
    std::string tmpl = slurp(dir + "/invoice/flat.html");
    std::map<std::string, std::string> partials;
    for (const char *p : {"header", "footer", "row"})
        partials[p] = slurp(dir + "/_partials/" + p + ".html");
    json_t *d = json_load_file((dir + "/invoice/sample.json").c_str(), 0, nullptr);
    if (!d)
        return 1;
    size_t bytes = 0;
    auto t0 = std::chrono::steady_clock::now();
    if (which == "mstch") {
        mstch::node ctx = to_mstch(d);
        for (long i = 0; i < n; i++)
            bytes = mstch::render(tmpl, ctx, partials).size();
    } else {
        kdata ctx = to_kainjow(d);
        for (auto &p : partials) {
            std::string text = p.second;
            ctx.set(p.first, kdata{kainjow::mustache::partial{[text]() { return text; }}});
        }
        kainjow::mustache::mustache m{tmpl};
        if (!m.is_valid()) {
            std::cerr << m.error_message() << "\n";
            return 1;
        }
        for (long i = 0; i < n; i++)
            bytes = m.render(ctx).size();
    }
    auto t1 = std::chrono::steady_clock::now();
    double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
    std::printf("%.0f %zu\n", ns, bytes);
    return 0;
}
