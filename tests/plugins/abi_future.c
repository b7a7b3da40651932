/*
 * abi_future.c — a plugin built for the next plugin ABI version, as a
 * plugin compiled against a newer s3db_plugin.h would be: the host must
 * refuse it at load, naming both versions, before calling anything of it
 * (tests/t_plugins.sh).  Its setup fails the test loudly if it is ever
 * called.
 */
#include <stdio.h>
#include <stdlib.h>
#include "s3db_plugin.h"

static s3db_code future_setup(s3db_plugin *p, const s3db_plugin_api *api, json_object *options,
                              s3db_error *err)
{
	fprintf(stderr, "abi_future: setup was called despite the ABI mismatch\n");
	abort();
}

static const s3db_plugin_def future_def = {
	.abi_version = S3DB_PLUGIN_ABI_VERSION + 1,
	.size = sizeof(s3db_plugin_def),
	.name = "AbiFuture",
	.version = "0",
	.setup = future_setup,
};

const s3db_plugin_def *s3db_plugin_entry(void);
const s3db_plugin_def *s3db_plugin_entry(void)
{
	return &future_def;
}
