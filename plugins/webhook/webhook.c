/*
 * webhook.c — an example custom plugin: the guide's NotificationPlugin
 * in C, loaded from a shared object (-o plugin=.../webhook.so).
 *
 * Every operation the configured events name ("insert", "update",
 * "delete" by default; "get", "list" and "count" too) is POSTed as JSON
 * to webhookUrl:
 *
 *   {"event": "insert", "resource": "users", "id": "u1", "data": {...},
 *    "timestamp": "2026-11-27T00:14:16.366Z",
 *    "user": {"uid": 0, "gid": 0, "pid": 4242, "process": "tee"}}
 *
 * Options (JSON config / reconfigurable while mounted):
 *   webhookUrl  string; when absent, the S3DB_WEBHOOK_URL environment
 *               variable (so that -o plugin=PATH, which gives no
 *               options, works); required unless enabled is false
 *   events      array of event names, default ["insert","update","delete"]
 *   resources   array of resource names; default: every resource
 *   timeout     milliseconds per POST, default 5000
 *   retries     extra attempts after a failed POST, default 3
 *   queueSize   events waiting at most, default 1000
 *   enabled     default true (false: the plugin does nothing)
 *
 * Design: the event listener runs on the thread of the operation (a FUSE
 * worker), so it only serialises the payload and appends it to a bounded
 * queue — it never waits for the network.  When the queue is full the
 * event is dropped and counted (the log says so, at the first drop and
 * every 100th).  One sender thread of the plugin (api->add_thread) takes
 * payloads off the queue and POSTs them with libcurl, retrying with a
 * doubling back-off; at stop it sends what is still queued once each
 * (pending writes stored at unmount are notified too) and returns.
 *
 * /.webhook shows the counters as JSON: sent, failed (given up after the
 * retries), dropped (queue full), queued (waiting now), retried.  The
 * URL is not shown nor logged: webhook URLs often carry their secret.
 *
 * It uses only s3db_plugin.h (every host service comes through the api
 * table), json-c and libcurl: it does not link libs3db.
 */
#include <curl/curl.h>
#include <errno.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "s3db_plugin.h"

#define WEBHOOK_NAME "webhook"
#define WEBHOOK_VERSION "1.0.0"

/* ---- configuration ----------------------------------------------------------- */

typedef struct webhook_config {
	int enabled;
	char *url;                     /* never logged nor shown */
	unsigned events;               /* bit per s3db_event_type (after-events) */
	char **resources;              /* NULL-terminated; NULL: every resource */
	long timeout_ms;
	int retries;
	size_t queue_size;
} webhook_config;

static const struct {
	const char *name;
	s3db_event_type type;
} event_names[] = {
	{ "insert", S3DB_EV_AFTER_INSERT }, { "update", S3DB_EV_AFTER_UPDATE },
	{ "delete", S3DB_EV_AFTER_DELETE }, { "get", S3DB_EV_AFTER_GET },
	{ "list", S3DB_EV_AFTER_LIST },     { "count", S3DB_EV_AFTER_COUNT },
};

static void config_free(webhook_config *c)
{
	if (!c)
		return;
	free(c->url);
	for (size_t i = 0; c->resources && c->resources[i]; i++)
		free(c->resources[i]);
	free(c->resources);
	free(c);
}

/* The name of an after-event ("insert"), or NULL. */
static const char *event_short_name(s3db_event_type t)
{
	for (size_t i = 0; i < sizeof event_names / sizeof event_names[0]; i++)
		if (event_names[i].type == t)
			return event_names[i].name;
	return NULL;
}

static s3db_code config_error(s3db_error *err, s3db_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static s3db_code config_error(s3db_error *err, s3db_code code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		int n = snprintf(err->message, sizeof err->message, WEBHOOK_NAME ": ");
		vsnprintf(err->message + n, sizeof err->message - (size_t)n, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

/* A number option in [min, max]; 0 or -1 with err set. */
static int get_number(json_object *opts, const char *key, double min, double max, double *out,
                      s3db_error *err)
{
	json_object *v;
	if (!json_object_object_get_ex(opts, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)) {
		config_error(err, S3DB_ERR_INVALID_ARG, "%s: must be a number", key);
		return -1;
	}
	double d = json_object_get_double(v);
	if (d < min || d > max) {
		config_error(err, S3DB_ERR_INVALID_ARG, "%s: must be between %.0f and %.0f", key, min,
		             max);
		return -1;
	}
	*out = d;
	return 0;
}

static s3db_code parse_events(json_object *v, unsigned *out, s3db_error *err)
{
	if (!json_object_is_type(v, json_type_array))
		return config_error(err, S3DB_ERR_INVALID_ARG, "events: must be an array of names");
	*out = 0;
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		json_object *e = json_object_array_get_idx(v, i);
		const char *name = json_object_is_type(e, json_type_string) ? json_object_get_string(e)
		                                                             : NULL;
		size_t k = 0;
		while (name && k < sizeof event_names / sizeof event_names[0] &&
		       strcmp(event_names[k].name, name))
			k++;
		if (!name || k == sizeof event_names / sizeof event_names[0])
			return config_error(err, S3DB_ERR_INVALID_ARG,
			                    "events[%zu]: must be one of insert, update, delete, get, list, "
			                    "count", i);
		*out |= 1u << event_names[k].type;
	}
	return S3DB_OK;
}

static s3db_code parse_resources(json_object *v, char ***out, s3db_error *err)
{
	if (!json_object_is_type(v, json_type_array))
		return config_error(err, S3DB_ERR_INVALID_ARG, "resources: must be an array of names");
	size_t n = json_object_array_length(v);
	char **list = calloc(n + 1, sizeof *list);
	if (!list)
		return config_error(err, S3DB_ERR_NOMEM, "out of memory");
	*out = list;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string))
			return config_error(err, S3DB_ERR_INVALID_ARG, "resources[%zu]: must be a string",
			                    i);
		if (!(list[i] = strdup(json_object_get_string(e))))
			return config_error(err, S3DB_ERR_NOMEM, "out of memory");
	}
	return S3DB_OK;
}

/* Reads the options into a new config (*out, freed with config_free). */
static s3db_code config_parse(json_object *opts, webhook_config **out, s3db_error *err)
{
	webhook_config *c = calloc(1, sizeof *c);
	if (!c)
		return config_error(err, S3DB_ERR_NOMEM, "out of memory");
	c->enabled = 1;
	c->events = 1u << S3DB_EV_AFTER_INSERT | 1u << S3DB_EV_AFTER_UPDATE |
	            1u << S3DB_EV_AFTER_DELETE;
	c->timeout_ms = 5000;
	c->retries = 3;
	c->queue_size = 1000;
	s3db_code rc = S3DB_OK;
	json_object *v = NULL;
	double d;
	if (json_object_object_get_ex(opts, "enabled", &v))
		c->enabled = json_object_get_boolean(v);
	const char *env_url = getenv("S3DB_WEBHOOK_URL");
	v = NULL;
	if (json_object_object_get_ex(opts, "webhookUrl", &v) || (env_url && *env_url)) {
		const char *url = v ? json_object_get_string(v) : env_url;
		if ((v && !json_object_is_type(v, json_type_string)) ||
		    (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)))
			rc = config_error(err, S3DB_ERR_INVALID_ARG,
			                  "webhookUrl: must be an http:// or https:// URL");
		else if (!(c->url = strdup(url)))
			rc = config_error(err, S3DB_ERR_NOMEM, "out of memory");
	} else if (c->enabled) {
		rc = config_error(err, S3DB_ERR_INVALID_ARG,
		                  "webhookUrl: required (or S3DB_WEBHOOK_URL in the environment)");
	}
	if (rc == S3DB_OK && json_object_object_get_ex(opts, "events", &v))
		rc = parse_events(v, &c->events, err);
	if (rc == S3DB_OK && json_object_object_get_ex(opts, "resources", &v))
		rc = parse_resources(v, &c->resources, err);
	if (rc == S3DB_OK) {
		d = (double)c->timeout_ms;
		if (get_number(opts, "timeout", 1, 600000, &d, err))
			rc = S3DB_ERR_INVALID_ARG;
		c->timeout_ms = (long)d;
		d = c->retries;
		if (rc == S3DB_OK && get_number(opts, "retries", 0, 20, &d, err))
			rc = S3DB_ERR_INVALID_ARG;
		c->retries = (int)d;
		d = (double)c->queue_size;
		if (rc == S3DB_OK && get_number(opts, "queueSize", 1, 1000000, &d, err))
			rc = S3DB_ERR_INVALID_ARG;
		c->queue_size = (size_t)d;
	}
	if (rc != S3DB_OK) {
		config_free(c);
		return rc;
	}
	*out = c;
	return S3DB_OK;
}

/* ---- the plugin's state ----------------------------------------------------------- */

typedef struct webhook {
	const s3db_plugin_api *api;
	s3db_plugin *p;
	pthread_mutex_t lock;         /* everything below                    */
	pthread_cond_t ready;         /* a payload was queued                */
	webhook_config *cfg;          /* swapped by reconfigure              */
	char **queue;                 /* ring of JSON payloads (malloc'd)    */
	size_t cap, head, count;
	unsigned long long sent, failed, dropped, retried;
	int curl_ready;
} webhook;

static int resource_wanted(const webhook_config *c, const char *resource)
{
	if (!c->resources)
		return 1;
	for (size_t i = 0; c->resources[i]; i++)
		if (resource && !strcmp(c->resources[i], resource))
			return 1;
	return 0;
}

/* "2026-11-27T00:14:16.366Z" of now. */
static void iso_now(char *buf, size_t size)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char date[32];
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, size, "%s.%03dZ", date, (int)(ts.tv_nsec / 1000000L) % 1000);
}

/* The JSON text POSTed for an event (malloc'd), or NULL when out of memory. */
static char *payload_for(const s3db_event *ev)
{
	json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	char now[40];
	iso_now(now, sizeof now);
	json_object *data = ev->type == S3DB_EV_AFTER_DELETE ? ev->old_record : ev->new_record;
	json_object *user = json_object_new_object();
	json_object_object_add(user, "uid", json_object_new_int64((int64_t)ev->ctx->uid));
	json_object_object_add(user, "gid", json_object_new_int64((int64_t)ev->ctx->gid));
	json_object_object_add(user, "pid", json_object_new_int64((int64_t)ev->ctx->pid));
	json_object_object_add(user, "process",
	                       json_object_new_string(ev->ctx->process ? ev->ctx->process : ""));
	json_object_object_add(o, "event", json_object_new_string(event_short_name(ev->type)));
	json_object_object_add(o, "resource", json_object_new_string(ev->resource ? ev->resource : ""));
	json_object_object_add(o, "id", ev->id ? json_object_new_string(ev->id) : NULL);
	json_object_object_add(o, "data", data ? json_object_get(data) : NULL);
	json_object_object_add(o, "timestamp", json_object_new_string(now));
	json_object_object_add(o, "user", user);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                                  JSON_C_TO_STRING_NOSLASHESCAPE);
	char *copy = text ? strdup(text) : NULL;
	json_object_put(o);
	return copy;
}

/* The listener: on the operation's thread, so it only queues. */
static s3db_code on_event(void *ud, const s3db_event *ev)
{
	webhook *w = ud;
	if ((int)ev->type % 2 == 0 || ev->result != S3DB_OK)
		return S3DB_OK; /* before-events, failed operations */
	pthread_mutex_lock(&w->lock);
	const webhook_config *c = w->cfg;
	int wanted = c->enabled && (c->events & (1u << ev->type)) && resource_wanted(c, ev->resource);
	pthread_mutex_unlock(&w->lock);
	if (!wanted)
		return S3DB_OK;
	char *payload = payload_for(ev);
	pthread_mutex_lock(&w->lock);
	unsigned long long dropped = 0;
	if (payload && w->count < w->cap) {
		w->queue[(w->head + w->count) % w->cap] = payload;
		w->count++;
		payload = NULL;
		pthread_cond_signal(&w->ready);
	} else {
		dropped = ++w->dropped;
	}
	size_t queued = w->count;
	pthread_mutex_unlock(&w->lock);
	free(payload);
	if (dropped == 1 || (dropped && dropped % 100 == 0))
		w->api->log(w->p, S3DB_PLUGIN_LOG_WARN,
		            "queue full (%zu waiting): %llu event(s) dropped so far", queued, dropped);
	return S3DB_OK;
}

/* ---- sending ---------------------------------------------------------------------- */

static size_t discard_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	(void)ptr;
	(void)ud;
	return size * nmemb;
}

/* One POST; 0 on a 2xx answer, else -1 with *why filled. */
static int post_once(CURL *curl, const char *url, const char *payload, long timeout_ms,
                     char *why, size_t why_size)
{
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "s3dbfs-webhook/" WEBHOOK_VERSION);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
	CURLcode cc = curl_easy_perform(curl);
	long status = 0;
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(headers);
	if (cc != CURLE_OK) {
		snprintf(why, why_size, "%s", curl_easy_strerror(cc));
		return -1;
	}
	if (status < 200 || status > 299) {
		snprintf(why, why_size, "HTTP %ld", status);
		return -1;
	}
	return 0;
}

/* Delivers one payload with retries (one attempt only once stopping). */
static void deliver(webhook *w, CURL *curl, const char *payload)
{
	pthread_mutex_lock(&w->lock);
	char *url = w->cfg->url ? strdup(w->cfg->url) : NULL;
	long timeout = w->cfg->timeout_ms;
	int retries = w->cfg->retries;
	pthread_mutex_unlock(&w->lock);
	char why[256] = "no webhookUrl";
	int ok = 0, attempt = 0;
	double backoff = 0.1;
	while (url) {
		ok = post_once(curl, url, payload, timeout, why, sizeof why) == 0;
		if (ok || attempt >= retries || w->api->stopping(w->p))
			break;
		attempt++;
		pthread_mutex_lock(&w->lock);
		w->retried++;
		pthread_mutex_unlock(&w->lock);
		if (w->api->sleep(w->p, backoff))
			break; /* stopping: no more waiting */
		backoff *= 2;
	}
	free(url);
	pthread_mutex_lock(&w->lock);
	if (ok)
		w->sent++;
	else
		w->failed++;
	pthread_mutex_unlock(&w->lock);
	if (!ok)
		w->api->log(w->p, S3DB_PLUGIN_LOG_WARN, "POST failed after %d attempt(s): %s",
		            attempt + 1, why);
}

/* Takes the oldest payload off the queue (NULL when empty). */
static char *queue_pop(webhook *w)
{
	if (!w->count)
		return NULL;
	char *payload = w->queue[w->head];
	w->queue[w->head] = NULL;
	w->head = (w->head + 1) % w->cap;
	w->count--;
	return payload;
}

/* The sender thread: waits for payloads (waking every 200 ms to see
 * whether the plugin is stopping), sends them, and at stop sends what is
 * left once each. */
static void sender_main(s3db_plugin *p, void *ud)
{
	webhook *w = ud;
	CURL *curl = curl_easy_init();
	if (!curl) {
		w->api->log(p, S3DB_PLUGIN_LOG_ERROR, "cannot create a curl handle: nothing is sent");
		return;
	}
	for (;;) {
		int stopping = w->api->stopping(p);
		pthread_mutex_lock(&w->lock);
		if (!w->count && !stopping) {
			struct timespec t;
			clock_gettime(CLOCK_REALTIME, &t);
			t.tv_nsec += 200 * 1000000L;
			if (t.tv_nsec >= 1000000000L) {
				t.tv_sec++;
				t.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&w->ready, &w->lock, &t);
		}
		char *payload = queue_pop(w);
		pthread_mutex_unlock(&w->lock);
		if (payload) {
			deliver(w, curl, payload);
			free(payload);
		} else if (stopping) {
			break;
		}
	}
	curl_easy_cleanup(curl);
}

/* ---- /.webhook ------------------------------------------------------------------------ */

static int read_counters(void *ud, const char *query, char **text, size_t *len)
{
	webhook *w = ud;
	pthread_mutex_lock(&w->lock);
	int n = asprintf(text,
	                 "{\n  \"sent\": %llu,\n  \"failed\": %llu,\n  \"dropped\": %llu,\n"
	                 "  \"queued\": %zu,\n  \"retried\": %llu,\n  \"queueSize\": %zu,\n"
	                 "  \"enabled\": %s\n}\n",
	                 w->sent, w->failed, w->dropped, w->count, w->retried, w->cap,
	                 w->cfg->enabled ? "true" : "false");
	pthread_mutex_unlock(&w->lock);
	if (n < 0) {
		*text = NULL;
		return -ENOMEM;
	}
	*len = (size_t)n;
	return 0;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

/* The host's table: stop, destroy and reconfigure receive only the
 * plugin, so the table setup was given is kept here (one host per
 * process: the same table for every instance). */
static const s3db_plugin_api *the_api;

static s3db_code webhook_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *options,
                               s3db_error *err)
{
	if (api->abi_version != S3DB_PLUGIN_ABI_VERSION || api->size < sizeof *api)
		return config_error(err, S3DB_ERR_UNSUPPORTED,
		                    "built for plugin ABI %d, the host has ABI %d", S3DB_PLUGIN_ABI_VERSION,
		                    api->abi_version);
	the_api = api;
	webhook *w = calloc(1, sizeof *w);
	if (!w)
		return config_error(err, S3DB_ERR_NOMEM, "out of memory");
	w->api = api;
	w->p = p;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->ready, NULL);
	api->set_state(p, w);
	s3db_code rc = config_parse(options, &w->cfg, err);
	if (rc != S3DB_OK)
		return rc; /* destroy frees w */
	w->cap = w->cfg->queue_size;
	if (!(w->queue = calloc(w->cap, sizeof *w->queue)))
		return config_error(err, S3DB_ERR_NOMEM, "out of memory");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return config_error(err, S3DB_ERR_INTERNAL, "libcurl cannot be initialised");
	w->curl_ready = 1;
	if (!api->on(p, on_event, w))
		return config_error(err, S3DB_ERR_NOMEM, "cannot subscribe to events");
	int r = api->add_thread(p, "webhook", sender_main, w);
	if (r)
		return config_error(err, S3DB_ERR_INTERNAL, "cannot add its thread: %s", strerror(-r));
	r = api->add_file(p, "/.webhook", read_counters, NULL, w, 1);
	if (r)
		return config_error(err, r == -EEXIST ? S3DB_ERR_EXISTS : S3DB_ERR_INTERNAL,
		                    "/.webhook: %s", strerror(-r));
	size_t nres = 0;
	while (w->cfg->resources && w->cfg->resources[nres])
		nres++;
	api->log(p, S3DB_PLUGIN_LOG_INFO, "%s; %s; queue of %zu, timeout %ld ms, %d retries",
	         w->cfg->enabled ? "enabled" : "disabled (enabled: false)",
	         nres ? "some resources" : "every resource", w->cap, w->cfg->timeout_ms,
	         w->cfg->retries);
	return S3DB_OK;
}

/* New options while mounted: everything but queueSize may change. */
static s3db_code webhook_reconfigure(s3db_plugin *p, json_object *options, s3db_error *err)
{
	webhook *w = the_api->state(p);
	webhook_config *next = NULL;
	s3db_code rc = config_parse(options, &next, err);
	if (rc != S3DB_OK)
		return rc;
	if (next->queue_size != w->cap) {
		config_free(next);
		return config_error(err, S3DB_ERR_UNSUPPORTED,
		                    "queueSize: cannot change while mounted (remount)");
	}
	pthread_mutex_lock(&w->lock);
	webhook_config *old = w->cfg;
	w->cfg = next;
	pthread_mutex_unlock(&w->lock);
	config_free(old);
	return S3DB_OK;
}

/* Frees everything; after a failed setup too (w may be partial). */
static void webhook_destroy(s3db_plugin *p)
{
	webhook *w = the_api->state(p);
	if (!w)
		return;
	the_api->set_state(p, NULL);
	for (size_t i = 0; w->queue && i < w->count; i++)
		free(w->queue[(w->head + i) % w->cap]);
	free(w->queue);
	config_free(w->cfg);
	if (w->curl_ready)
		curl_global_cleanup();
	pthread_cond_destroy(&w->ready);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

static const s3db_plugin_def webhook_def = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION,
	.size = sizeof(s3db_plugin_def),
	.name = WEBHOOK_NAME,
	.version = WEBHOOK_VERSION,
	.setup = webhook_setup,
	.destroy = webhook_destroy,
	.reconfigure = webhook_reconfigure,
};

const s3db_plugin_def *s3db_plugin_entry(void);
const s3db_plugin_def *s3db_plugin_entry(void)
{
	return &webhook_def;
}
