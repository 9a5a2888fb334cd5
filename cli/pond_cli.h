/*  pond_cli: what every command of the `pond` command line shares.

    A command is one function `int pond_cmd_NAME (int argc, char *argv [])`
    (argv [0] is the command's name) plus one help function, listed in the
    command table of cli/pond.c. Commands parse their options with
    pond_cli_getopt, which also handles the options every command takes
    (--data DIR, --ingest/--pub/--control EP, --keys DIR, --as NAME,
    --timeout MS, --verbose, --help) and reports usage errors. With --keys
    (or $POND_KEYS) the command talks CURVE with key --as (or $POND_AS,
    else "admin"): pond_cli_getopt makes it the process identity. Exit codes are the same everywhere:
    0 done, 1 failed (NACK, timeout, broker not reachable), 2 usage error.
    Errors and hints go to stderr; machine-readable output to stdout.
*/
#ifndef POND_CLI_H_INCLUDED
#define POND_CLI_H_INCLUDED

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include "pond_client.h"

#define POND_EXIT_OK      0
#define POND_EXIT_FAILURE 1
#define POND_EXIT_USAGE   2

#define POND_CLI_TIMEOUT  5000    //  default --timeout, msecs

//  One command of the table in pond.c
typedef struct {
    const char *name;
    const char *summary;    //  one line for `pond --help`
    int (*run) (int argc, char *argv []);
    void (*help) (FILE *out);
} pond_cli_command_t;

//  Options shared by every command, and where they lead
typedef struct {
    const char *command;         //  for messages: "pond COMMAND: ..."
    void (*help) (FILE *out);    //  printed by --help
    const char *data_dir;        //  --data / --data-dir, else NULL
    const char *ingest;          //  overrides, else NULL
    const char *pub;
    const char *control;
    const char *keys;     //  --keys, else $POND_KEYS, else NULL
    const char *as;       //  --as, else $POND_AS, else "admin"
    bool keys_managed;    //  pond keys: --keys is what it manages,
                          //  not an identity to use
    int timeout_ms;       //  --timeout
    bool verbose;
    pond_endpoints_t eps;    //  resolved by pond_cli_getopt at the end
    int exit_code;           //  when done is set: what to return
    bool done;               //  parsing ended the command (--help, error)
} pond_cli_t;

//  Option values of the shared options (commands use values below 0x100
//  or single letters for their own)
enum {
    POND_OPT_DATA = 0x100,
    POND_OPT_DATA_DIR,
    POND_OPT_INGEST,
    POND_OPT_PUB,
    POND_OPT_CONTROL,
    POND_OPT_TIMEOUT,
    POND_OPT_VERBOSE,
    POND_OPT_HELP,
    POND_OPT_KEYS,
    POND_OPT_AS
};

//  Put first in every command's struct option table
#define POND_CLI_COMMON_OPTIONS \
    { "data-dir", required_argument, NULL, POND_OPT_DATA_DIR }, \
        { "ingest", required_argument, NULL, POND_OPT_INGEST }, \
        { "pub", required_argument, NULL, POND_OPT_PUB }, \
        { "control", required_argument, NULL, POND_OPT_CONTROL }, \
        { "timeout", required_argument, NULL, POND_OPT_TIMEOUT }, \
        { "keys", required_argument, NULL, POND_OPT_KEYS }, \
        { "as", required_argument, NULL, POND_OPT_AS }, \
        { "verbose", no_argument, NULL, POND_OPT_VERBOSE }, \
    { \
        "help", no_argument, NULL, POND_OPT_HELP \
    }

//  ... and this one too, except where --data means something else
#define POND_CLI_DATA_OPTION \
    { \
        "data", required_argument, NULL, POND_OPT_DATA \
    }

//  Help text of the shared options, for each command's help
#define POND_CLI_COMMON_HELP \
    "Common options:\n" \
    "  --data DIR        data directory of the mesh (also --data-dir; default\n" \
    "                    $POND_DATA, else ./pond-data); endpoints come from\n" \
    "                    DIR/broker.zpl when a broker runs there\n" \
    "  --ingest EP, --pub EP, --control EP\n" \
    "                    broker endpoints, overriding the data directory\n" \
    "  --keys DIR        talk CURVE with a key pair of DIR (default $POND_KEYS;\n" \
    "                    without either: local mode, no keys); see pond keys\n" \
    "  --as NAME         the key to use (default $POND_AS, else admin)\n" \
    "  --timeout MS      how long to wait for replies (default 5000 ms, unless\n" \
    "                    the text above gives this command's own)\n" \
    "  --verbose         log retries\n" \
    "  --help            this help\n" \
    "Exit status, unless the text above says more: 0 done, 1 failed (NACK,\n" \
    "timeout, broker not reachable), 2 usage error.\n"

//  Start parsing the options of command (argv [0]); help prints its help.
void
    pond_cli_init (pond_cli_t *cli, const char *command, void (*help) (FILE *out));

//  getopt_long over argv with the given options (POND_CLI_COMMON_OPTIONS
//  first). Handles shared options itself and returns the next option of the
//  command, or -1 when parsing is over. Then, if cli->done is set, the
//  command must return cli->exit_code at once (it printed its help, or a
//  usage error); otherwise cli->eps holds the resolved endpoints.
int
    pond_cli_getopt (pond_cli_t *cli, int argc, char *argv [], const struct option *options);

//  Print "pond COMMAND: message" and a hint to stderr. Return
//  POND_EXIT_USAGE (pond_cli_usage) or POND_EXIT_FAILURE (pond_cli_fail).
int
    pond_cli_usage (pond_cli_t *cli, const char *format, ...)
        __attribute__ ((format (printf, 2, 3)));
int
    pond_cli_fail (pond_cli_t *cli, const char *format, ...)
        __attribute__ ((format (printf, 2, 3)));

//  Tell the user what to do when the broker did not answer.
void
    pond_cli_hint_broker (pond_cli_t *cli);

//  Parse a whole decimal number. Returns 0, or -1 if text is not one.
int
    pond_cli_parse_uint (const char *text, uint64_t *value);

//  Split "A,B,C" into names (at most max, each a valid event name) copied
//  into names [i] (each POND_NAME_MAX + 1 bytes). Returns the count, or -1
//  after printing a usage error.
int
    pond_cli_parse_names (pond_cli_t *cli, const char *text, char (*names) [POND_NAME_MAX + 1],
                          size_t max);

//  ---------------------------------------------------------------------
//  The commands (one file per family)

//  pond_cmd_log.c: the log itself
int
    pond_cmd_publish (int argc, char *argv []);
void
    pond_cmd_publish_help (FILE *out);
int
    pond_cmd_tail (int argc, char *argv []);
void
    pond_cmd_tail_help (FILE *out);
int
    pond_cmd_replay (int argc, char *argv []);
void
    pond_cmd_replay_help (FILE *out);
int
    pond_cmd_stats (int argc, char *argv []);
void
    pond_cmd_stats_help (FILE *out);

//  pond_cmd_keys.c: the CURVE keys of a mesh
int
    pond_cmd_keys (int argc, char *argv []);
void
    pond_cmd_keys_help (FILE *out);

#endif
