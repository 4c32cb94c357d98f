/*
 * VM options (options/options.h) from a JSON body to a child's arguments:
 * every option with a field for POST /vms (`snapvm run`), the host
 * resources a snapshot does not keep for clones and invocations (`snapvm
 * restore`, `snapvm invoke`). The child checks the values as its command
 * line's; serve only checks the JSON shapes.
 */
#include "serve/internal.h"
#include "options/options.h"
#include "common/common.h"

#include <stdio.h>

static bool wanted(const struct vm_option *o, enum serve_vm_options which)
{
	return o->field && (which == SERVE_VM_RUN || o->restore);
}

void serve_vm_fields(enum serve_vm_options which, const char *const *first, const char **fields,
		     size_t size)
{
	size_t n = 0;

	while (first[n] && n < size - 1) {
		fields[n] = first[n];
		n++;
	}
	for (const struct vm_option *o = vm_options; o->flag && n < size - 1; o++)
		if (wanted(o, which))
			fields[n++] = o->field;
	fields[n] = NULL;
}

static int add_value(struct serve_argv *a, const struct vm_option *o, json_t *v,
		     struct serve_reply *reply)
{
	if (json_is_string(v) && o->kind != VM_OPTION_SWITCH) {
		a->argv[a->n++] = o->flag;
		a->argv[a->n++] = json_string_value(v);
	} else if (json_is_integer(v) && json_integer_value(v) >= 0 &&
		   o->kind == VM_OPTION_NUMBER && a->numbers_used < ARRAY_SIZE(a->numbers)) {
		char *text = a->numbers[a->numbers_used++];

		snprintf(text, sizeof(a->numbers[0]), "%lld", (long long)json_integer_value(v));
		a->argv[a->n++] = o->flag;
		a->argv[a->n++] = text;
	} else if (json_is_boolean(v) && o->kind == VM_OPTION_SWITCH) {
		if (json_is_true(v))
			a->argv[a->n++] = o->flag;
	} else {
		serve_reply_error(reply, 400, "bad_field", "'%s' must be %s", o->field,
				  o->kind == VM_OPTION_SWITCH	? "true or false"
				  : o->kind == VM_OPTION_NUMBER ? "a number or a string"
				  : o->kind == VM_OPTION_LIST	? "a list of strings"
								: "a string");
		return -1;
	}
	return 0;
}

int serve_vm_argv(json_t *body, enum serve_vm_options which, struct serve_argv *a,
		  struct serve_reply *reply)
{
	for (const struct vm_option *o = vm_options; o->flag; o++) {
		json_t *v = wanted(o, which) ? json_object_get(body, o->field) : NULL, *item;
		size_t k;

		if (!v)
			continue;
		if (o->kind != VM_OPTION_LIST) {
			if (add_value(a, o, v, reply))
				return -1;
			continue;
		}
		if (!json_is_array(v) || json_array_size(v) > 8) {
			serve_reply_error(reply, 400, "bad_field",
					  "'%s' must be a list of at most 8 strings", o->field);
			return -1;
		}
		json_array_foreach(v, k, item)
		{
			if (!json_is_string(item)) {
				serve_reply_error(reply, 400, "bad_field",
						  "'%s' must be a list of strings", o->field);
				return -1;
			}
			a->argv[a->n++] = o->flag;
			a->argv[a->n++] = json_string_value(item);
		}
	}
	return 0;
}
