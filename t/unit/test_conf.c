/* SPDX-License-Identifier: MIT */
/* libcore/conf.c: schema validation of real files, with the exact error
 * lines an operator sees (captured through the log forward hook). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "host.h"
#include "log.h"

/* ------------------------------------------------------------ log capture */

#define MAX_LINES 32
static char lines[MAX_LINES][2048];
static int nlines;

static int capture(int level, const char *src, const char *line)
{
	if (level <= EPSEC_LOG_ERR && nlines < MAX_LINES)
		snprintf(lines[nlines++], sizeof(lines[0]), "%s", line);
	return 0;
}

static char dir[] = "/tmp/test_conf.XXXXXX";

static int group_setup(void **state)
{
	if (!mkdtemp(dir))
		return -1;
	epsec_log_open("test_conf", EPSEC_DEST_HOST, EPSEC_LOG_DEBUG);
	epsec_log_set_forward(capture);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* dir/name with `text`; returns the path (static). */
static const char *write_file(const char *name, const char *text)
{
	static char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* ------------------------------------------------------------ a schema */

struct settings {
	int level, dest;
	const char *id;
	const char *mux;
	int on_timeout;
	bool verbose;
	struct epsec_strlist protect;
	struct epsec_strlist agents;
	const config_setting_t *engine;
	const config_setting_t *options;
};

static const char *const policies[] = { "allow", "deny", NULL };

#define KEY(n, t, req, field, lo, hi, ch) { n, t, req, offsetof(struct settings, field), lo, hi, ch }
static const struct epsec_conf_key schema[] = {
	KEY("DEBUG_LEVEL", EPSEC_CONF_INT, false, level, 0, 7, NULL),
	KEY("DEBUG_DEST", EPSEC_CONF_INT, false, dest, 1, 3, NULL),
	KEY("id", EPSEC_CONF_STRING, false, id, 0, 0, NULL),
	KEY("mux", EPSEC_CONF_URI, true, mux, 0, 0, NULL),
	KEY("on_timeout", EPSEC_CONF_CHOICE, false, on_timeout, 0, 0, policies),
	KEY("verbose", EPSEC_CONF_BOOL, false, verbose, 0, 0, NULL),
	KEY("protect", EPSEC_CONF_STRLIST, true, protect, 0, 0, NULL),
	KEY("agents", EPSEC_CONF_URILIST, false, agents, 0, 0, NULL),
	KEY("engine", EPSEC_CONF_LIST, false, engine, 0, 0, NULL),
	KEY("options", EPSEC_CONF_GROUP, false, options, 0, 0, NULL),
	{ .name = NULL },
};

#define ALL_KEYS "DEBUG_LEVEL, DEBUG_DEST, id, mux, on_timeout, verbose, protect, agents, engine, options"
#define URI_HINT "a URI such as unix:///run/epsec/mux.sock or tcp://HOST:PORT"
#define MINIMAL "mux = \"unix:///run/epsec/mux.sock\";\nprotect = [ \"/srv\" ];\n"

static struct epsec_conf conf;
static struct settings set;
static char path[PATH_MAX];

static void defaults(void)
{
	memset(&set, 0, sizeof(set));
	set.level = 4;
	set.dest = 1;
	set.id = "default-id";
	set.on_timeout = 0;
}

/* Load `text` as dir/name against the schema; the log lines land in lines[]. */
static int load(const char *name, const char *text)
{
	nlines = 0;
	defaults();
	snprintf(path, sizeof(path), "%s", write_file(name, text));
	return epsec_conf_load(&conf, path, schema, &set);
}

static void unload(void)
{
	epsec_strlist_free(&set.protect);
	epsec_strlist_free(&set.agents);
	epsec_conf_free(&conf);
}

/* The one line expected, "PATH:LINE: rest". */
static void assert_line(int i, int line, const char *rest)
{
	char want[PATH_MAX + 2048];

	snprintf(want, sizeof(want), "%s:%d: %s", path, line, rest);
	assert_true(i < nlines);
	assert_string_equal(lines[i], want);
}

/* ------------------------------------------------------------ tests */

static void good_file_and_defaults(void **state)
{
	assert_int_equal(load("good.conf",
			      "# comment\n"
			      "DEBUG_LEVEL = 6;\n"
			      "mux = \"tcp://127.0.0.1:48652\";\n"
			      "on_timeout = \"deny\";\n"
			      "verbose = true;\n"
			      "protect = [ \"/srv/data\", \"/home\" ];\n"
			      "agents = ( \"unix:///run/a.sock\", \"vsock://any:48651\" );\n"
			      "options = { x = 1; };\n"),
			 0);
	assert_int_equal(nlines, 0);
	assert_int_equal(set.level, 6);
	assert_int_equal(set.dest, 1);           /* default kept */
	assert_string_equal(set.id, "default-id"); /* default kept */
	assert_string_equal(set.mux, "tcp://127.0.0.1:48652");
	assert_int_equal(set.on_timeout, 1);
	assert_true(set.verbose);
	assert_int_equal(set.protect.n, 2);
	assert_string_equal(set.protect.v[0], "/srv/data");
	assert_string_equal(set.protect.v[1], "/home");
	assert_null(set.protect.v[2]);
	assert_int_equal(set.agents.n, 2);
	assert_string_equal(set.agents.v[1], "vsock://any:48651");
	assert_null(set.engine);
	assert_non_null(set.options);
	unload();
}

/* The runbook tells operators to edit "DEBUG_LEVEL=4" lines. */
static void runbook_syntax(void **state)
{
	int v = -1;

	assert_int_equal(load("runbook.conf",
			      "DEBUG_LEVEL=4\n"
			      "DEBUG_DEST=2\n"
			      "mux=\"unix:///run/epsec/mux.sock\"\n"
			      "protect=[\"/srv\"]\n"),
			 0);
	assert_int_equal(nlines, 0);
	assert_int_equal(set.level, 4);
	assert_int_equal(set.dest, 2);
	unload();

	write_file("runbook.conf", "DEBUG_LEVEL=7\nDEBUG_DEST=3\n");
	assert_int_equal(epsec_conf_peek_int(path, "DEBUG_LEVEL", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(epsec_conf_peek_int(path, "DEBUG_DEST", &v), 0);
	assert_int_equal(v, 3);
}

static void peek_int(void **state)
{
	char p[PATH_MAX];
	int v = 42;

	snprintf(p, sizeof(p), "%s", write_file("peek.conf", "a = 5000000000L;\nb = \"x\";\nc = -3;\n"));
	assert_int_equal(epsec_conf_peek_int(p, "c", &v), 0);
	assert_int_equal(v, -3);
	v = 42;
	assert_int_equal(epsec_conf_peek_int(p, "a", &v), -ERANGE);
	assert_int_equal(epsec_conf_peek_int(p, "b", &v), -EINVAL);
	assert_int_equal(epsec_conf_peek_int(p, "nope", &v), -ENOENT);
	assert_int_equal(v, 42);
	snprintf(p, sizeof(p), "%s/missing.conf", dir);
	assert_int_equal(epsec_conf_peek_int(p, "c", &v), -ENOENT);
	snprintf(p, sizeof(p), "%s", write_file("peekbad.conf", "c = ;\n"));
	nlines = 0;
	assert_int_equal(epsec_conf_peek_int(p, "c", &v), -EINVAL);
	assert_int_equal(nlines, 0); /* quiet: the agent polls it */
}

static void unknown_key(void **state)
{
	assert_int_equal(load("unknown.conf", MINIMAL "\nbogus = 1;\n"), -EINVAL);
	assert_int_equal(nlines, 1);
	assert_line(0, 4, "bogus: unknown key; expected one of: " ALL_KEYS);
	unload();
}

static void wrong_types(void **state)
{
	assert_int_equal(load("types.conf",
			      MINIMAL
			      "DEBUG_LEVEL = \"4\";\n"
			      "id = 7;\n"
			      "on_timeout = 1;\n"
			      "verbose = \"yes\";\n"
			      "options = [ 1 ];\n"
			      "engine = { a = 1; };\n"
			      "agents = \"tcp://h:1\";\n"),
			 -EINVAL);
	assert_int_equal(nlines, 7);
	/* Reported in schema order. */
	assert_line(0, 3, "DEBUG_LEVEL: expected an integer 0..7");
	assert_line(1, 4, "id: expected a string");
	assert_line(2, 5, "on_timeout: expected one of: allow, deny");
	assert_line(3, 6, "verbose: expected true or false");
	assert_line(4, 9, "agents: expected a list of URIs such as [ \"unix:///run/epsec/mux.sock\" ]");
	assert_line(5, 8, "engine: expected a list of groups such as ( { key = value; } )");
	assert_line(6, 7, "options: expected a group such as { key = value; }");
	assert_int_equal(set.level, 4); /* untouched on error */
	assert_string_equal(set.id, "default-id");
	unload();
}

static void out_of_range(void **state)
{
	assert_int_equal(load("range.conf", "DEBUG_LEVEL = 9;\n" MINIMAL "DEBUG_DEST = 0;\n"), -EINVAL);
	assert_int_equal(nlines, 2);
	assert_line(0, 1, "DEBUG_LEVEL: expected an integer 0..7, got 9");
	assert_line(1, 4, "DEBUG_DEST: expected an integer 1..3, got 0");
	unload();

	/* 64-bit values are range-checked, not truncated. */
	assert_int_equal(load("range64.conf", MINIMAL "DEBUG_LEVEL = 4294967300L;\n"), -EINVAL);
	assert_line(0, 3, "DEBUG_LEVEL: expected an integer 0..7, got 4294967300");
	assert_int_equal(set.level, 4);
	unload();

	assert_int_equal(load("range64ok.conf", MINIMAL "DEBUG_LEVEL = 5L;\n"), 0);
	assert_int_equal(set.level, 5);
	unload();
}

static void bad_choice(void **state)
{
	assert_int_equal(load("choice.conf", MINIMAL "on_timeout = \"maybe\";\n"), -EINVAL);
	assert_int_equal(nlines, 1);
	assert_line(0, 3, "on_timeout: expected one of: allow, deny, got \"maybe\"");
	unload();
}

static void required_missing(void **state)
{
	assert_int_equal(load("required.conf", "\n\nDEBUG_LEVEL = 4;\n"), -EINVAL);
	assert_int_equal(nlines, 2);
	/* The root group has no line of its own: line 1. */
	assert_line(0, 1, "mux: missing required key; expected " URI_HINT);
	assert_line(1, 1, "protect: missing required key; expected a list of strings such as [ \"a\", \"b\" ]");
	unload();

	assert_int_equal(load("required_empty.conf", "mux = \"unix:///x\";\nprotect = [ ];\n"), -EINVAL);
	assert_int_equal(nlines, 1);
	assert_line(0, 2, "protect: expected at least one entry");
	unload();
}

/* Every mistake in the file, not just the first. */
static void all_errors_reported(void **state)
{
	assert_int_equal(load("two.conf",
			      "mux = \"unix://relative\";\n"
			      "protect = ( \"/a\",\n"
			      "            3 );\n"
			      "agents = [ \"tcp://h:1\", \"tcp://h:0\", \"udp:\" ];\n"
			      "typo = 1;\n"),
			 -EINVAL);
	assert_int_equal(nlines, 5);
	assert_line(0, 5, "typo: unknown key; expected one of: " ALL_KEYS);
	assert_line(1, 1, "mux: expected " URI_HINT ", got \"unix://relative\"");
	assert_line(2, 3, "protect[1]: expected a string");
	assert_line(3, 4, "agents[1]: expected " URI_HINT ", got \"tcp://h:0\"");
	assert_line(4, 4, "agents[2]: expected " URI_HINT ", got \"udp:\"");
	unload();
}

static void unparseable(void **state)
{
	assert_int_equal(load("syntax.conf", "mux = \"unix:///x\";\nprotect = ;\n"), -EINVAL);
	assert_int_equal(nlines, 1);
	assert_line(0, 2, "syntax error");
	unload();

	nlines = 0;
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", dir);
	assert_int_equal(epsec_conf_load(&conf, path, schema, &set), -EINVAL);
	assert_int_equal(nlines, 1);
	assert_true(strstr(lines[0], "does-not-exist.conf: cannot read: No such file or directory"));
	assert_ptr_equal(strstr(lines[0], path), lines[0]);
	unload();

	nlines = 0;
	assert_int_equal(epsec_conf_load(&conf, dir, schema, &set), -EINVAL);
	assert_int_equal(nlines, 1);
	assert_true(strstr(lines[0], ": cannot read: Is a directory"));
	unload();
}

/* @include resolves against the including file's directory, not the CWD,
 * and errors name the included file. */
static void includes(void **state)
{
	char want[PATH_MAX + 128];

	write_file("inc-good.conf", "DEBUG_LEVEL = 3;\n");
	assert_int_equal(load("inc.conf", MINIMAL "@include \"inc-good.conf\"\n"), 0);
	assert_int_equal(set.level, 3);
	unload();

	write_file("inc-bad.conf", "\nDEBUG_LEVEL = 8;\n");
	assert_int_equal(load("inc2.conf", MINIMAL "@include \"inc-bad.conf\"\n"), -EINVAL);
	assert_int_equal(nlines, 1);
	snprintf(want, sizeof(want), "%s/inc-bad.conf:2: DEBUG_LEVEL: expected an integer 0..7, got 8", dir);
	assert_string_equal(lines[0], want);
	unload();

	write_file("inc-broken.conf", "\n\nx = ;\n");
	assert_int_equal(load("inc3.conf", MINIMAL "@include \"inc-broken.conf\"\n"), -EINVAL);
	assert_int_equal(nlines, 1);
	snprintf(want, sizeof(want), "%s/inc-broken.conf:3: syntax error", dir);
	assert_string_equal(lines[0], want);
	unload();
}

/* libconfig 1.5 exit()s the program when an @include names a directory
 * ("", "."): refused before libconfig reads, with the line, also when a
 * nested file does it and when vsep peeks; includes that loop end. */
static void include_not_a_file(void **state)
{
	char want[PATH_MAX + 128];
	int v = -1;

	assert_int_equal(load("incdir.conf", MINIMAL "\n@include \"\"\n"), -EINVAL);
	assert_int_equal(nlines, 1);
	snprintf(want, sizeof(want), "%s/incdir.conf:4: @include \"%s/\": not a regular file", dir,
		 dir);
	assert_string_equal(lines[0], want);
	unload();

	write_file("inc-dot.conf", "@include \".\"\n");
	assert_int_equal(load("incdir2.conf", MINIMAL "@include \"inc-dot.conf\"\n"), -EINVAL);
	assert_int_equal(nlines, 1);
	snprintf(want, sizeof(want), "%s/inc-dot.conf:1: @include \"%s/.\": not a regular file", dir,
		 dir);
	assert_string_equal(lines[0], want);
	assert_int_equal(epsec_conf_peek_int(path, "DEBUG_LEVEL", &v), -EINVAL);
	unload();

	write_file("inc-loop.conf", "@include \"inc-loop.conf\"\n@include \"inc-loop.conf\"\n");
	assert_int_equal(load("incloop.conf", MINIMAL "@include \"inc-loop.conf\"\n"), -EINVAL);
	unload();
}

static void uri_forms(void **state)
{
	static const char *const good[] = {
		"unix:///run/epsec/mux.sock", "tcp://127.0.0.1:48652", "tcp://*:1",
		"tcp://sva.example.com:65535", "tcp://[::1]:48652", "tcp://eth0:5555",
		"vsock://2:48651", "vsock://any:1", "vsock://host:5", "vmci://local:48651",
		"vmci://4294967295:1", "ipc+zmq://anything", "x-y.z://a",
	};
	static const char *const bad[] = {
		"", "unix:", "unix://", "unix://relative", "unix:///", "tcp://host",
		"tcp://host:0", "tcp://host:65536", "tcp://:80", "tcp://[::1:80",
		"tcp://h o:1", "tcp://host:8x", "vsock://2", "vsock://cid:1", "vsock://2:",
		"vmci://-1:5", "Tcp://h:1", "1tcp://h:1", "foo://", "no-scheme",
		"unix:///" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	char text[512];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), "protect = [\"/a\"];\nmux = \"%s\";\n", good[i]);
		if (load("uri.conf", text) != 0)
			fail_msg("refused good URI %s: %s", good[i], lines[0]);
		unload();
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[512];

		snprintf(text, sizeof(text), "protect = [\"/a\"];\nmux = \"%s\";\n", bad[i]);
		if (load("uri.conf", text) != -EINVAL)
			fail_msg("accepted bad URI \"%s\"", bad[i]);
		snprintf(want, sizeof(want), "mux: expected " URI_HINT ", got \"%s\"", bad[i]);
		assert_int_equal(nlines, 1);
		assert_line(0, 2, want);
		unload();
	}
}

static void uri_split(void **state)
{
	char scheme[8];
	const char *rest;

	assert_int_equal(epsec_uri_split("tcp://h:1", scheme, sizeof(scheme), &rest), 0);
	assert_string_equal(scheme, "tcp");
	assert_string_equal(rest, "h:1");
	assert_int_equal(epsec_uri_split("unix:///a", scheme, sizeof(scheme), &rest), 0);
	assert_string_equal(scheme, "unix");
	assert_string_equal(rest, "/a");
	assert_int_equal(epsec_uri_split("vsock://", scheme, sizeof(scheme), &rest), 0);
	assert_string_equal(rest, "");
	assert_int_equal(epsec_uri_split("/run/x.sock", scheme, sizeof(scheme), &rest), -EINVAL);
	assert_int_equal(epsec_uri_split("tcp:/h:1", scheme, sizeof(scheme), &rest), -EINVAL);
	assert_int_equal(epsec_uri_split("TCP://h:1", scheme, sizeof(scheme), &rest), -EINVAL);
	assert_int_equal(epsec_uri_split("://h", scheme, sizeof(scheme), &rest), -EINVAL);
	assert_int_equal(epsec_uri_split(NULL, scheme, sizeof(scheme), &rest), -EINVAL);
	/* "verylongscheme" does not fit 8 bytes: refused, not truncated. */
	assert_int_equal(epsec_uri_split("verylongscheme://x", scheme, sizeof(scheme), &rest),
			 -ENAMETOOLONG);
	assert_int_equal(epsec_uri_split("sevench://x", scheme, sizeof(scheme), &rest), 0);
	assert_string_equal(scheme, "sevench");
}

/* Nested groups: list elements validated with epsec_conf_apply by their
 * owner, errors named by the full path. */
struct engine {
	const char *plugin;
	int action;
	const config_setting_t *options;
};

static const char *const actions[] = { "deny", "delete", "quarantine", NULL };
static const struct epsec_conf_key engine_schema[] = {
	{ "plugin", EPSEC_CONF_STRING, true, offsetof(struct engine, plugin), 0, 0, NULL },
	{ "action", EPSEC_CONF_CHOICE, true, offsetof(struct engine, action), 0, 0, actions },
	{ "options", EPSEC_CONF_GROUP, false, offsetof(struct engine, options), 0, 0, NULL },
	{ .name = NULL },
};

static void nested_groups(void **state)
{
	static const char *const allowed[] = { "signatures", NULL };
	struct engine e[2] = { { 0 } };

	assert_int_equal(load("engines.conf",
			      MINIMAL
			      "engine = (\n"
			      "  { plugin = \"eicar\"; action = \"delete\";\n"
			      "    options = { signatures = \"/x\"; bogus = 1; }; },\n"
			      "  { action = \"bogus\";\n"
			      "    extra = 1; }\n"
			      ");\n"),
			 0);
	assert_non_null(set.engine);
	assert_int_equal(epsec_conf_apply(config_setting_get_elem(set.engine, 0), engine_schema, &e[0]), 0);
	assert_string_equal(e[0].plugin, "eicar");
	assert_int_equal(e[0].action, 1);
	assert_int_equal(nlines, 0);

	/* What a plugin's open() does with its options group. */
	assert_int_equal(epsec_conf_check_keys(e[0].options, allowed), -EINVAL);
	assert_int_equal(nlines, 1);
	assert_line(0, 5, "engine[0].options.bogus: unknown key; expected one of: signatures");
	assert_int_equal(epsec_conf_check_keys(NULL, allowed), 0);
	assert_int_equal(epsec_conf_error(e[0].options, "expected %s", "something"), -EINVAL);
	assert_line(1, 5, "engine[0].options: expected something");
	/* A plugin whose options group is absent (NULL) may still report. */
	assert_int_equal(epsec_conf_error(NULL, "options: expected %s", "a group"), -EINVAL);
	assert_int_equal(nlines, 3);
	assert_string_equal(lines[2], "options: expected a group");

	nlines = 0;
	assert_int_equal(epsec_conf_apply(config_setting_get_elem(set.engine, 1), engine_schema, &e[1]), -EINVAL);
	assert_int_equal(nlines, 3);
	assert_line(0, 7, "engine[1].extra: unknown key; expected one of: plugin, action, options");
	/* Missing from a nested group: the group's own line. */
	assert_line(1, 6, "engine[1].plugin: missing required key; expected a string");
	assert_line(2, 6, "engine[1].action: expected one of: deny, delete, quarantine, got \"bogus\"");
	unload();
}

/* host->conf_strlist, as a plugin calls it on its options group. */
static void host_strlist(void **state)
{
	const struct epsec_host *h = epsec_host_get();
	const config_setting_t *o;
	char **v = (char **)1;
	size_t n = 99;

	assert_true(h->abi_minor >= 2);
	assert_true(h->struct_size >=
		    offsetof(struct epsec_host, conf_strlist) + sizeof(h->conf_strlist));
	assert_int_equal(load("strlist.conf",
			      MINIMAL
			      "options = {\n"
			      "  one = \"/srv/a\";\n"
			      "  two = [ \"/srv/a\", \"/srv/b\" ];\n"
			      "  three = ( \"x\", \"yy\", \"zzz\" );\n"
			      "  none = [];\n"
			      "  mixed = ( \"/a\", 3,\n"
			      "            \"\" );\n"
			      "  number = 5;\n"
			      "  group = { a = \"b\"; };\n"
			      "  blank = \"\";\n"
			      "};\n"),
			 0);
	o = set.options;

	assert_int_equal(h->conf_strlist(config_setting_get_member(o, "one"), "files", &v, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "/srv/a");
	assert_null(v[1]);
	free(v);
	assert_int_equal(h->conf_strlist(config_setting_get_member(o, "two"), NULL, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "/srv/a");
	assert_string_equal(v[1], "/srv/b");
	assert_null(v[2]);
	free(v);
	assert_int_equal(h->conf_strlist(config_setting_get_member(o, "three"), NULL, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[2], "zzz");
	assert_null(v[3]);
	free(v);
	assert_int_equal(nlines, 0);

	/* Each refusal: -EINVAL, nothing handed out, one line per mistake. */
	v = (char **)1;
	assert_int_equal(h->conf_strlist(config_setting_get_member(o, "none"), "files", &v, &n),
			 -EINVAL);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_line(0, 7, "options.none: expected at least one string (files)");
	assert_int_equal(h->conf_strlist(config_setting_get_member(o, "mixed"), "files", &v, &n),
			 -EINVAL);
	assert_null(v);
	assert_line(1, 8, "options.mixed[1]: expected a string (files)");
	assert_line(2, 9, "options.mixed[2]: expected a non-empty string (files)");
	assert_int_equal(h->conf_strlist(config_setting_get_member(o, "number"), "files", &v, &n),
			 -EINVAL);
	assert_line(3, 10, "options.number: expected a string or a list of strings (files)");
	assert_int_equal(h->conf_strlist(config_setting_get_member(o, "group"), NULL, &v, &n),
			 -EINVAL);
	assert_line(4, 11, "options.group: expected a string or a list of strings");
	assert_int_equal(h->conf_strlist(config_setting_get_member(o, "blank"), "files", &v, &n),
			 -EINVAL);
	assert_line(5, 12, "options.blank: expected a non-empty string (files)");
	assert_int_equal(nlines, 6);
	assert_null(v);
	unload();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_file_and_defaults),
		cmocka_unit_test(runbook_syntax),
		cmocka_unit_test(peek_int),
		cmocka_unit_test(unknown_key),
		cmocka_unit_test(wrong_types),
		cmocka_unit_test(out_of_range),
		cmocka_unit_test(bad_choice),
		cmocka_unit_test(required_missing),
		cmocka_unit_test(all_errors_reported),
		cmocka_unit_test(unparseable),
		cmocka_unit_test(includes),
		cmocka_unit_test(include_not_a_file),
		cmocka_unit_test(uri_forms),
		cmocka_unit_test(uri_split),
		cmocka_unit_test(nested_groups),
		cmocka_unit_test(host_strlist),
	};

	return cmocka_run_group_tests_name("conf", tests, group_setup, group_teardown);
}
