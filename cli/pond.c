/*  pond: the command line of a pond mesh.

    A thin dispatcher: `pond COMMAND [OPTIONS]` runs the command of that
    name from the table below; `pond --help` lists them, `pond help
    COMMAND` and `pond COMMAND --help` explain one. Each command lives in
    a pond_cmd_*.c file and shares option parsing and messages through
    pond_cli.h.
*/
#include "pond_cli.h"
#include "pond_keys.h"
#include "pond_mesh.h"

#include <string.h>

//  The commands. To add one: write pond_cmd_NAME and pond_cmd_NAME_help in
//  a pond_cmd_*.c file, declare them in pond_cli.h (or pond_mesh.h for the
//  mesh's commands), add the file to CMakeLists.txt and one line here.
static const pond_cli_command_t s_commands [] = {
    { "publish", "publish an event and wait until it is stored (or one per JSON line on stdin)",
      pond_cmd_publish, pond_cmd_publish_help },
    { "tail", "print live events as JSON lines", pond_cmd_tail, pond_cmd_tail_help },
    { "replay", "print stored events in order: by name and time, by entity, or by seq",
      pond_cmd_replay, pond_cmd_replay_help },
    { "stats", "print the counters of the broker and the store as JSON", pond_cmd_stats,
      pond_cmd_stats_help },
    { "up", "start the mesh: a supervisor runs store, broker and the actors", pond_cmd_up,
      pond_cmd_up_help },
    { "down", "stop the mesh started by pond up", pond_cmd_down, pond_cmd_down_help },
    { "status", "show each process of the mesh, the actors' positions and the head",
      pond_cmd_status, pond_cmd_status_help },
    { "query", "ask a view about an entity (quacks, badges, alexa, mobile)", pond_cmd_query,
      pond_cmd_query_help },
    { "rebuild", "rebuild a view from the log while the mesh runs", pond_cmd_rebuild,
      pond_cmd_rebuild_help },
    { "verify", "check that every view matches a rebuild from the log", pond_cmd_verify,
      pond_cmd_verify_help },
    { "recompute", "apply new badge rules to the whole history", pond_cmd_recompute,
      pond_cmd_recompute_help },
    { "command", "where a command (recompute, rebuild) is: its status, or wait for it",
      pond_cmd_command, pond_cmd_command_help },
    { "demo", "start a mesh in a fresh directory and tell the whole story", pond_cmd_demo,
      pond_cmd_demo_help },
    { "keys", "make and list the CURVE keys of broker, devices, actors, apps and admin",
      pond_cmd_keys, pond_cmd_keys_help },
};

#define COMMANDS (sizeof (s_commands) / sizeof (s_commands [0]))

static void
s_help (FILE *out)
{
    fprintf (out, "Usage: pond COMMAND [OPTIONS]\n"
                  "       pond help COMMAND     (or: pond COMMAND --help)\n"
                  "\n"
                  "pond is the command line of an event-sourced actor mesh: events go\n"
                  "through pond-broker into the log kept by pond-store, and from there\n"
                  "to every actor.\n"
                  "\n"
                  "Commands:\n");
    for (size_t i = 0; i < COMMANDS; i++)
        fprintf (out, "  %-10s %s\n", s_commands [i].name, s_commands [i].summary);
    fprintf (out, "\n"
                  "Every command takes --data DIR (the mesh's data directory; default\n"
                  "$POND_DATA, else ./pond-data), --ingest/--pub/--control EP,\n"
                  "--keys DIR and --as NAME (CURVE; default $POND_KEYS, $POND_AS; without\n"
                  "them: local mode, no keys) and --timeout MS.\n"
                  "Exit status: 0 done, 1 failed, 2 usage error.\n");
}

static const pond_cli_command_t *
s_find (const char *name)
{
    for (size_t i = 0; i < COMMANDS; i++)
        if (streq (s_commands [i].name, name))
            return &s_commands [i];
    return NULL;
}

static int
s_unknown (const char *name)
{
    fprintf (stderr, "pond: unknown command '%s'\nTry 'pond --help'.\n", name);
    return POND_EXIT_USAGE;
}

int
main (int argc, char *argv [])
{
    //  CZMQ logs to stdout by default: keep stdout for results
    zsys_set_logstream (stderr);
    zsys_set_logident ("pond");
    if (argc < 2) {
        s_help (stderr);
        return POND_EXIT_USAGE;
    }
    const char *name = argv [1];
    if (streq (name, "--help") || streq (name, "-h") || streq (name, "help")) {
        if (streq (name, "help") && argc > 2) {
            const pond_cli_command_t *command = s_find (argv [2]);
            if (!command)
                return s_unknown (argv [2]);
            command->help (stdout);
            return POND_EXIT_OK;
        }
        s_help (stdout);
        return POND_EXIT_OK;
    }
    const pond_cli_command_t *command = s_find (name);
    if (!command)
        return s_unknown (name);
    int rc = command->run (argc - 1, argv + 1);
    pond_keys_reset ();
    return rc;
}
