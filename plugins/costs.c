/*
 * costs.c — CostsPlugin: what the storage requests of a database cost.
 *
 * The guide's CostsPlugin counts every S3 command the client sends and
 * prices it by class.  Here the request hook (api->on_request) sees every
 * logical storage request after its retries; each try reaches the server
 * and is billed, so a request counts `attempts` times (the server's own
 * log has one line per try).  Counters are atomics indexed by command:
 * the hook runs on whatever thread made the request and never locks.
 *
 * Classes and default prices (USD per request, as the guide's structure
 * shows them: $0.005 / $0.0004 per 1,000):
 *   put    PutObject, CopyObject                       0.000005
 *   get    GetObject                                   0.0000004
 *   head   HeadObject                                  0.0000004
 *   delete DeleteObject, DeleteObjects (guide's table) 0.0000004
 *   list   ListObjectsV2                               0.000005
 * CopyObject has no counter of its own in the guide's `requests`; it is a
 * PUT-class request (AWS bills it as one) and counts under `put`, while
 * `events` names it CopyObjectCommand.
 *
 * Options (the guide documents none; the price keys are the guide's
 * structure's):  {"prices": {"put": n, "get": n, "head": n, "delete": n,
 * "list": n}} — USD per request, each optional, >= 0.
 *
 * File /.costs: the guide's structure as JSON
 *   {total, prices{put,get,head,delete,list}, requests{total,put,get,head,
 *    delete,list}, events{total, PutObjectCommand, GetObjectCommand, ...}}.
 * Writing "reset" (surrounding white space ignored) zeroes the counters;
 * writing nothing changes nothing; anything else is refused with -EINVAL
 * and a log line saying why.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>
#include "s3db_plugin.h"
#include "util.h"

/* Price classes, in the order of the guide's `requests` object. */
enum costs_class { COSTS_PUT = 0, COSTS_GET, COSTS_HEAD, COSTS_DELETE, COSTS_LIST, COSTS__COUNT };

static const char *const costs_class_names[COSTS__COUNT] = { "put", "get", "head", "delete",
	                                                     "list" };

static const double costs_default_prices[COSTS__COUNT] = { 0.005 / 1000, 0.0004 / 1000,
	                                                   0.0004 / 1000, 0.0004 / 1000,
	                                                   0.005 / 1000 };

typedef struct costs_state {
	s3db_plugin *plugin;
	const s3db_plugin_api *api;
	_Atomic double prices[COSTS__COUNT];   /* reconfigure may change them */
	_Atomic uint64_t by_command[S3DB_CMD__COUNT];
} costs_state;

/* A consistent-enough copy of the counters for one report. */
typedef struct costs_snapshot {
	uint64_t by_command[S3DB_CMD__COUNT];
	double prices[COSTS__COUNT];
} costs_snapshot;

/* The host's api table.  stop/destroy/reconfigure get only the plugin
 * handle, so the table handed to setup is kept here (the host has one
 * table for every plugin, alive while any plugin is). */
static const s3db_plugin_api *costs_api;

/* The price class of a command. */
static enum costs_class costs_class_of(s3db_command cmd)
{
	switch (cmd) {
	case S3DB_CMD_PUT_OBJECT:
	case S3DB_CMD_COPY_OBJECT:
		return COSTS_PUT;
	case S3DB_CMD_GET_OBJECT:
		return COSTS_GET;
	case S3DB_CMD_HEAD_OBJECT:
		return COSTS_HEAD;
	case S3DB_CMD_DELETE_OBJECT:
	case S3DB_CMD_DELETE_OBJECTS:
		return COSTS_DELETE;
	case S3DB_CMD_LIST_OBJECTS_V2:
	default:
		return COSTS_LIST;
	}
}

/* Request hook: one count per try of the request. */
static void costs_on_request(void *ud, const s3db_request_info *info)
{
	costs_state *st = ud;
	if ((int)info->command < 0 || info->command >= S3DB_CMD__COUNT)
		return;
	uint64_t tries = info->attempts > 0 ? (uint64_t)info->attempts : 1;
	atomic_fetch_add_explicit(&st->by_command[info->command], tries, memory_order_relaxed);
}

/* A price or a total without float noise (12 significant digits). */
static json_object *costs_number(double d)
{
	char buf[40];
	snprintf(buf, sizeof buf, "%.12g", d);
	return json_object_new_double_s(d, buf);
}

/* The guide's structure for snap (a new object; the caller puts it). */
static json_object *costs_report(const costs_snapshot *snap)
{
	uint64_t per_class[COSTS__COUNT] = { 0 };
	uint64_t total = 0;
	for (int c = 0; c < S3DB_CMD__COUNT; c++) {
		per_class[costs_class_of((s3db_command)c)] += snap->by_command[c];
		total += snap->by_command[c];
	}
	double cost = 0;
	json_object *prices = json_object_new_object();
	json_object *requests = json_object_new_object();
	json_object_object_add(requests, "total", json_object_new_int64((int64_t)total));
	for (int k = 0; k < COSTS__COUNT; k++) {
		cost += (double)per_class[k] * snap->prices[k];
		json_object_object_add(prices, costs_class_names[k],
		                       costs_number(snap->prices[k]));
		json_object_object_add(requests, costs_class_names[k],
		                       json_object_new_int64((int64_t)per_class[k]));
	}
	json_object *events = json_object_new_object();
	json_object_object_add(events, "total", json_object_new_int64((int64_t)total));
	for (int c = 0; c < S3DB_CMD__COUNT; c++) {
		char name[64];
		snprintf(name, sizeof name, "%sCommand", s3db_command_name((s3db_command)c));
		json_object_object_add(events, name, json_object_new_int64((int64_t)snap->by_command[c]));
	}
	json_object *out = json_object_new_object();
	json_object_object_add(out, "total", costs_number(cost));
	json_object_object_add(out, "prices", prices);
	json_object_object_add(out, "requests", requests);
	json_object_object_add(out, "events", events);
	return out;
}

/* Copies the counters (each read atomically) and the prices. */
static void costs_take_snapshot(costs_state *st, costs_snapshot *snap)
{
	for (int c = 0; c < S3DB_CMD__COUNT; c++)
		snap->by_command[c] = atomic_load_explicit(&st->by_command[c], memory_order_relaxed);
	for (int k = 0; k < COSTS__COUNT; k++)
		snap->prices[k] = atomic_load(&st->prices[k]);
}

/* /.costs read: the structure as pretty JSON with a final newline. */
static int costs_file_read(void *ud, const char *query, char **text, size_t *len)
{
	costs_snapshot snap;
	costs_take_snapshot(ud, &snap);
	json_object *report = costs_report(&snap);
	const char *json = json_object_to_json_string_ext(report, JSON_C_TO_STRING_PRETTY |
	                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(json);
	char *copy = malloc(n + 2);
	if (copy) {
		memcpy(copy, json, n);
		copy[n] = '\n';
		copy[n + 1] = '\0';
	}
	json_object_put(report);
	if (!copy)
		return -ENOMEM;
	*text = copy;
	*len = n + 1;
	return 0;
}

/* /.costs write: "reset" starts over; anything else is -EINVAL. */
static int costs_file_write(void *ud, const char *data, size_t len)
{
	costs_state *st = ud;
	while (len && strchr(" \t\r\n", data[0])) {
		data++;
		len--;
	}
	while (len && strchr(" \t\r\n", data[len - 1]))
		len--;
	if (len == 0)
		return 0; /* nothing written (a shell's O_TRUNC open, `: > /.costs`) */
	if (len != 5 || memcmp(data, "reset", 5) != 0) {
		st->api->log(st->plugin, S3DB_PLUGIN_LOG_WARN,
		             "/.costs: unknown command (%zu bytes); the only command is \"reset\"", len);
		return -EINVAL;
	}
	for (int c = 0; c < S3DB_CMD__COUNT; c++)
		atomic_store_explicit(&st->by_command[c], 0, memory_order_relaxed);
	st->api->log(st->plugin, S3DB_PLUGIN_LOG_INFO, "/.costs: counters reset");
	return 0;
}

/* Reads the options into prices[] (defaults for what is not given).
 * Unknown options and classes, and negative or non-numeric prices, are
 * errors naming the offending key. */
static s3db_code costs_parse_options(json_object *options, double prices[COSTS__COUNT],
                                     s3db_error *err)
{
	memcpy(prices, costs_default_prices, sizeof costs_default_prices);
	if (!options)
		return S3DB_OK;
	if (!json_object_is_type(options, json_type_object))
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "CostsPlugin: options must be an object");
	json_object_object_foreach(options, key, val) {
		if (strcmp(key, "prices") != 0)
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "CostsPlugin: unknown option '%s' (the only option is "
			                      "\"prices\")", key);
		if (!json_object_is_type(val, json_type_object))
			return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
			                      "CostsPlugin: \"prices\" must be an object {put, get, head, "
			                      "delete, list} of USD per request");
		json_object_object_foreach(val, cls, price) {
			int k = 0;
			while (k < COSTS__COUNT && strcmp(costs_class_names[k], cls) != 0)
				k++;
			if (k == COSTS__COUNT)
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "CostsPlugin: prices.%s: unknown class (put, get, "
				                      "head, delete, list)", cls);
			if (!json_object_is_type(price, json_type_double) &&
			    !json_object_is_type(price, json_type_int))
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "CostsPlugin: prices.%s must be a number", cls);
			double v = json_object_get_double(price);
			if (!(v >= 0) || v > 1e6)
				return s3db_error_set(err, S3DB_ERR_INVALID_ARG,
				                      "CostsPlugin: prices.%s must be >= 0 (USD per request)",
				                      cls);
			prices[k] = v;
		}
	}
	return S3DB_OK;
}

static s3db_code costs_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *options,
                             s3db_error *err)
{
	costs_state *st = calloc(1, sizeof *st);
	if (!st)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "CostsPlugin: out of memory");
	st->plugin = p;
	st->api = api;
	costs_api = api;
	double prices[COSTS__COUNT];
	s3db_code rc = costs_parse_options(options, prices, err);
	if (rc != S3DB_OK) {
		free(st);
		return rc;
	}
	for (int k = 0; k < COSTS__COUNT; k++)
		atomic_init(&st->prices[k], prices[k]);
	api->set_state(p, st);
	if (api->on_request(p, costs_on_request, st) == 0)
		return s3db_error_set(err, S3DB_ERR_NOMEM, "CostsPlugin: cannot observe requests");
	int frc = api->add_file(p, "/.costs", costs_file_read, costs_file_write, st, 1);
	if (frc != 0)
		return s3db_error_set(err, S3DB_ERR_INVALID_ARG, "CostsPlugin: /.costs: %s",
		                      strerror(-frc));
	return S3DB_OK;
}

/* Frees the state (the host removed the request hook and the file). */
static void costs_destroy(s3db_plugin *p)
{
	if (costs_api)
		free(costs_api->state(p));
}

/* Live reconfiguration: new prices apply to the next report; the
 * counters are kept. */
static s3db_code costs_reconfigure(s3db_plugin *p, json_object *options, s3db_error *err)
{
	costs_state *st = costs_api ? costs_api->state(p) : NULL;
	double prices[COSTS__COUNT];
	s3db_code rc = costs_parse_options(options, prices, err);
	if (rc == S3DB_OK && st)
		for (int k = 0; k < COSTS__COUNT; k++)
			atomic_store(&st->prices[k], prices[k]);
	return rc;
}

const s3db_plugin_def costs_plugin_def = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION,
	.size = sizeof(s3db_plugin_def),
	.name = "CostsPlugin",
	.version = "1.0",
	.setup = costs_setup,
	.destroy = costs_destroy,
	.reconfigure = costs_reconfigure,
};
