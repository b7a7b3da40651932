/*
 * events.c — the event bus every operation reports to and plugins listen
 * on.  Listeners are called in subscription order on the thread that ran
 * the operation; a before-event listener that returns an error cancels
 * the operation with that error.  The listener table is copied under the
 * read lock so a listener may subscribe or unsubscribe others.
 */
#include <stdlib.h>
#include <string.h>
#include "db.h"

static const char *const event_names[S3DB_EV__COUNT] = {
	"beforeInsert", "afterInsert", "beforeUpdate", "afterUpdate",
	"beforeDelete", "afterDelete", "beforeGet", "afterGet",
	"beforeList", "afterList", "beforeCount", "afterCount",
};

const char *s3db_event_name(s3db_event_type type)
{
	if ((int)type < 0 || type >= S3DB_EV__COUNT)
		return "unknown";
	return event_names[type];
}

void event_bus_init(event_bus *bus)
{
	memset(bus, 0, sizeof *bus);
	pthread_rwlock_init(&bus->lock, NULL);
	bus->next_id = 1;
}

void event_bus_destroy(event_bus *bus)
{
	free(bus->items);
	pthread_rwlock_destroy(&bus->lock);
}

int s3db_on(s3db *db, s3db_listener fn, void *userdata)
{
	event_bus *bus = &db->bus;
	int id = 0;
	pthread_rwlock_wrlock(&bus->lock);
	listener *p = s3db_array_room(bus->items, &bus->cap, bus->count, sizeof *p, 8);
	if (p) {
		bus->items = p;
		id = bus->next_id++;
		bus->items[bus->count++] = (listener){ .id = id, .fn = fn, .userdata = userdata };
	}
	pthread_rwlock_unlock(&bus->lock);
	return id;
}

void s3db_off(s3db *db, int listener_id)
{
	event_bus *bus = &db->bus;
	pthread_rwlock_wrlock(&bus->lock);
	for (size_t i = 0; i < bus->count; i++) {
		if (bus->items[i].id == listener_id) {
			memmove(&bus->items[i], &bus->items[i + 1],
			        (bus->count - i - 1) * sizeof *bus->items);
			bus->count--;
			break;
		}
	}
	pthread_rwlock_unlock(&bus->lock);
}

static int is_before(s3db_event_type t)
{
	return t % 2 == 0;
}

s3db_code event_emit(s3db *db, s3db_event_type type, const char *resource, const char *id,
                     json_object *old_record, json_object *new_record, const s3db_ctx *ctx,
                     s3db_code result, double duration_ms)
{
	static const s3db_ctx no_ctx = { .process = "", .origin = "api" };
	event_bus *bus = &db->bus;
	pthread_rwlock_rdlock(&bus->lock);
	size_t n = bus->count;
	listener *copy = n ? malloc(n * sizeof *copy) : NULL;
	if (copy)
		memcpy(copy, bus->items, n * sizeof *copy);
	pthread_rwlock_unlock(&bus->lock);
	if (n && !copy) {
		/* a before-listener may be a guard: never skip it silently */
		return is_before(type) ? S3DB_ERR_NOMEM : S3DB_OK;
	}
	s3db_event ev = {
		.type = type, .resource = resource, .id = id,
		.old_record = old_record, .new_record = new_record,
		.ctx = ctx ? ctx : &no_ctx, .result = result, .duration_ms = duration_ms,
	};
	s3db_code rc = S3DB_OK;
	for (size_t i = 0; i < n; i++) {
		s3db_code r = copy[i].fn(copy[i].userdata, &ev);
		if (r != S3DB_OK && is_before(type) && rc == S3DB_OK)
			rc = r;
	}
	free(copy);
	return rc;
}
