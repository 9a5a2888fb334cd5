/*  pond_demo: `pond demo`, the story of DESIGN.md told by a real mesh.

    In a fresh data directory it starts the mesh (pond up: store, broker
    and four actors, each its own process), lets four kitchen devices
    publish (one of them offline at first), shows what the actors made of
    it, changes the badge rules retroactively, asks Alexa, shows a mobile
    document, replays a time window by name, verifies every view against a
    rebuild from the log, and stops the mesh. Every step runs the very
    commands a person would type (shown with "$"), as child processes, and
    checks what they answer: a wrong answer stops the demo with exit 1,
    after bringing the mesh down.

    The only state is the demo_t of pond_cmd_demo; CZMQ's handler turns
    Ctrl-C into zsys_interrupted, which ends the demo the same clean way.
*/
#define _GNU_SOURCE
#include "pond_mesh.h"
#include "pond_actor_link.h"
#include "pond_supervisor.h"
#include "pond_time.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEMO_DIR        "./pond-demo-data"
#define DEMO_MARKER     ".pond-demo"    //  says a directory is the demo's to wipe
#define DEMO_CATCHUP_MS 30000           //  actors must have applied everything by then
#define DEMO_COMMAND_MS 60000           //  any one command
#define DEMO_OFFLINE_S  "3"             //  dora's device starts offline this long

typedef struct {
    pond_cli_t *cli;
    char dir [PATH_MAX];    //  absolute
    char bin_dir [PATH_MAX];
    bool keep;
    bool tty;
    int64_t started;    //  zclock_mono
    int step;
    const char *title;    //  of the current step
    bool mesh_up;         //  we started it: we stop it
} demo_t;

//  =====================================================================
//  Telling

static void
s_heading (demo_t *self, const char *title)
{
    self->step++;
    self->title = title;
    if (self->tty)
        printf ("\n\033[1m== %d. %s\033[0m\n", self->step, title);
    else
        printf ("\n== %d. %s\n", self->step, title);
    fflush (stdout);
}

static void s_say (demo_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_say (demo_t *self, const char *format, ...)
{
    (void) self;
    va_list args;
    va_start (args, format);
    printf ("   ");
    vprintf (format, args);
    printf ("\n");
    va_end (args);
    fflush (stdout);
}

//  The demo cannot go on: say why, bring the mesh down. Returns
//  POND_EXIT_FAILURE for the caller to return.
static int s_fail (demo_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

//  Show text (a command's output), each line indented
static void
s_echo (const char *text, FILE *out)
{
    const char *line = text;
    while (line && *line) {
        const char *end = strchr (line, '\n');
        int length = end ? (int) (end - line) : (int) strlen (line);
        //  A progress line that was updated in place: keep its last state
        const char *cr = (const char *) memrchr (line, '\r', (size_t) length);
        if (cr) {
            length -= (int) (cr + 1 - line);
            line = cr + 1;
        }
        fprintf (out, "    %.*s\n", length, line);
        line = end ? end + 1 : NULL;
    }
    fflush (out);
}

//  "$ pond query alexa carla 'what do I have?' --text", after a blank line
//  unless it follows another command
static void
s_show_command (char *const argv [], bool blank)
{
    printf ("%s $", blank ? "\n" : "");
    for (size_t i = 0; argv [i]; i++) {
        const char *arg = argv [i];
        if (strpbrk (arg, " ?*'\"$&;|<>()") || !*arg)
            printf (" '%s'", arg);
        else
            printf (" %s", arg);
    }
    printf ("\n");
    fflush (stdout);
}

//  =====================================================================
//  Running commands

//  How s_run shows a command
#define RUN_SHOW   1    //  print "$ command"
#define RUN_ECHO   2    //  print its stdout
#define RUN_STDERR 4    //  let its stderr through as it comes

//  Run a program of the build (argv [0] is its name) to its end. Returns
//  its exit code (-1 if it could not run or was killed); its stdout in
//  *out_p (caller frees) if out_p is not NULL. Its stderr, if collected,
//  is shown when it fails.
static int
s_run (demo_t *self, int how, char **out_p, char *const argv [])
{
    char path [PATH_MAX + 64];
    snprintf (path, sizeof path, "%s/%s", self->bin_dir, argv [0]);
    if (how & RUN_SHOW)
        s_show_command (argv, true);
    pond_mesh_child_t child;
    int code = -1;
    if (pond_mesh_child_start (&child, path, argv, (how & RUN_STDERR) != 0) == 0) {
        if (pond_mesh_children_finish (&child, 1, DEMO_COMMAND_MS))
            fprintf (stderr, "    (%s did not finish within %d s: killed)\n", argv [0],
                     DEMO_COMMAND_MS / 1000);
        code = pond_mesh_child_exit (&child);
        if (how & RUN_ECHO)
            s_echo (child.text [0], stdout);
        if (code != 0 && child.size [1])
            s_echo (child.text [1], stderr);
        if (out_p) {
            *out_p = child.text [0];
            child.text [0] = NULL;
        }
        pond_mesh_child_free (&child);
    }
    else
        fprintf (stderr, "    cannot run %s: %s\n", path, strerror (errno));
    return code;
}

static int
s_fail (demo_t *self, const char *format, ...)
{
    char reason [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (reason, sizeof reason, format, args);
    va_end (args);
    fflush (stdout);
    fprintf (stderr, "\npond demo: FAILED in step %d (%s): %s\n", self->step,
             self->title ? self->title : "preparing", reason);
    if (self->mesh_up) {
        fprintf (stderr, "pond demo: bringing the mesh down\n");
        char *argv [] = { "pond", "down", "--data", self->dir, NULL };
        s_run (self, RUN_ECHO, NULL, argv);
        self->mesh_up = false;
    }
    fprintf (stderr,
             "pond demo: the data is kept in %s; the logs of every process are in "
             "%s/logs\n",
             self->dir, self->dir);
    return POND_EXIT_FAILURE;
}

//  =====================================================================
//  Asking the mesh directly (the same sockets pond status and pond query use)

//  The log's head, from the broker's STATS. Returns 0, or -1 with err.
static int
s_head (demo_t *self, uint64_t *head, char *err, size_t errlen)
{
    pond_endpoints_t eps;
    pond_endpoints_resolve (self->dir, &eps);
    char *json = pond_client_stats (eps.control, 2000, err, errlen);
    cJSON *stats = json ? cJSON_Parse (json) : NULL;
    cJSON *value = cJSON_GetObjectItem (cJSON_GetObjectItem (stats, "store"), "head");
    int rc = -1;
    if (cJSON_IsNumber (value)) {
        *head = (uint64_t) cJSON_GetNumberValue (value);
        rc = 0;
    }
    else if (json)
        snprintf (err, errlen, "the store did not answer the broker");
    cJSON_Delete (stats);
    free (json);
    return rc;
}

//  Wait until every actor has applied the whole log, which stays the same
//  meanwhile (actors emit events too: badge-granter grants badges).
//  Returns 0 with the head, or -1 after s_fail.
static int
s_wait_caught_up (demo_t *self, uint64_t *head_p)
{
    int64_t start = zclock_mono ();
    pond_actor_link_t *links [POND_MESH_ACTORS] = { NULL };
    char err [512] = "";
    uint64_t head = 0, last_head = UINT64_MAX;
    int rc = -1;
    while (rc == -1 && !zsys_interrupted) {
        if (zclock_mono () - start > DEMO_CATCHUP_MS)
            break;
        bool all = s_head (self, &head, err, sizeof err) == 0;
        for (size_t i = 0; all && i < POND_MESH_ACTORS; i++) {
            if (!links [i])
                links [i] = pond_actor_link_new (self->dir, pond_mesh_actors [i], err, sizeof err);
            char *json = links [i] ? pond_actor_link_status (links [i], 2000) : NULL;
            cJSON *status = json ? cJSON_Parse (json) : NULL;
            double position = cJSON_GetNumberValue (cJSON_GetObjectItem (status, "position"));
            if (!status && links [i])
                snprintf (err, sizeof err, "%s", pond_actor_link_reason (links [i]));
            else if (status && position < (double) head)
                snprintf (err, sizeof err, "%s is at seq %.0f of %llu", pond_mesh_actors [i],
                          position, (unsigned long long) head);
            all = status && position >= (double) head;
            cJSON_Delete (status);
            free (json);
        }
        if (all && head == last_head)
            rc = 0;
        else {
            last_head = all ? head : UINT64_MAX;
            zclock_sleep (100);
        }
    }
    for (size_t i = 0; i < POND_MESH_ACTORS; i++)
        pond_actor_link_destroy (&links [i]);
    if (rc)
        return s_fail (self, "the actors did not apply the whole log within %d s (%s)",
                       DEMO_CATCHUP_MS / 1000, zsys_interrupted ? "interrupted" : err),
             -1;
    s_say (self, "all four actors have applied the log up to seq %llu (%.1f s)",
           (unsigned long long) head, (double) (zclock_mono () - start) / 1000);
    *head_p = head;
    return 0;
}

//  One view's answer about one customer as a tree (caller deletes), or
//  NULL if it does not know the customer (404). Sets *failed on other
//  errors, with the reason in err.
static cJSON *
s_ask (demo_t *self, const char *actor, const char *entity, bool *failed, char *err, size_t errlen)
{
    pond_actor_link_t *link = pond_actor_link_new (self->dir, actor, err, errlen);
    char *json = link ? pond_actor_link_query (link, entity, NULL, 5000) : NULL;
    cJSON *tree = json ? cJSON_Parse (json) : NULL;
    if (!tree && !(link && pond_actor_link_code (link) == POND_CODE_NOT_FOUND)) {
        *failed = true;
        if (link)
            snprintf (err, errlen, "%s about %s: %d %s", actor, entity, pond_actor_link_code (link),
                      pond_actor_link_reason (link));
    }
    free (json);
    pond_actor_link_destroy (&link);
    return tree;
}

//  A customer's badges as "Junior, Master" (or "-")
static void
s_badges_text (cJSON *badges, char *text, size_t size)
{
    *text = 0;
    cJSON *badge;
    cJSON_ArrayForEach (badge, cJSON_GetObjectItem (badges, "badges")) {
        const char *name = cJSON_GetStringValue (cJSON_GetObjectItem (badge, "name"));
        size_t used = strlen (text);
        snprintf (text + used, size - used, "%s%s", used ? ", " : "", name ? name : "?");
    }
    if (!*text)
        snprintf (text, size, "-");
}

//  The customers of the story and what they must have
typedef struct {
    const char *customer;
    int quacks;
    const char *badges_v1;
    const char *badges_v2;
} expect_t;

static const expect_t s_expected [] = {
    { "anna", 20, "Junior, Master", "Junior" },
    { "ben", 30, "Junior, Master", "Junior, Master" },
    { "carla", 5, "-", "-" },
    { "dora", 2, "-", "-" },
};
#define CUSTOMERS (sizeof s_expected / sizeof s_expected [0])

//  Print quacks and badges of every customer, from quack-counter and
//  badge-granter, and check them against the story. Returns 0 or -1.
static int
s_show_badges (demo_t *self, bool v2)
{
    printf ("\n    %-9s %-7s %s\n", "customer", "quacks",
            v2 ? "badges (rules v2)" : "badges (rules v1)");
    for (size_t i = 0; i < CUSTOMERS; i++) {
        const expect_t *expect = &s_expected [i];
        bool failed = false;
        char err [512] = "";
        cJSON *quacks = s_ask (self, "quack-counter", expect->customer, &failed, err, sizeof err);
        cJSON *badges = failed ? NULL
                               : s_ask (self, "badge-granter", expect->customer, &failed, err,
                                        sizeof err);
        double count = cJSON_GetNumberValue (cJSON_GetObjectItem (quacks, "quacks"));
        char text [256];
        s_badges_text (badges, text, sizeof text);
        cJSON_Delete (quacks);
        cJSON_Delete (badges);
        if (failed)
            return s_fail (self, "%s", err), -1;
        printf ("    %-9s %-7.0f %s\n", expect->customer, count == count ? count : 0, text);
        const char *want = v2 ? expect->badges_v2 : expect->badges_v1;
        if (count != expect->quacks || !streq (text, want))
            return s_fail (self, "%s should have %d quacks and badges %s, not %.0f and %s",
                           expect->customer, expect->quacks, want, count, text),
                 -1;
    }
    fflush (stdout);
    return 0;
}

//  =====================================================================
//  The data directory

static int
s_remove (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb;
    (void) flag;
    return ftw->level == 0 ? 0 : remove (path);    //  Keep the directory itself
}

//  Make dir fresh: create it, or wipe it if the demo made it. Returns 0,
//  or -1 after saying why not.
static int
s_fresh_dir (demo_t *self, const char *given)
{
    struct stat info;
    bool existed = stat (given, &info) == 0;
    if (existed && !S_ISDIR (info.st_mode))
        return pond_cli_fail (self->cli,
                              "%s exists and is not a directory; give another "
                              "--data",
                              given),
             -1;
    if (!existed && zsys_dir_create ("%s", given))
        return pond_cli_fail (self->cli, "cannot create %s: %s", given, strerror (errno)), -1;
    if (!realpath (given, self->dir))
        return pond_cli_fail (self->cli, "cannot resolve %s", given), -1;
    if (existed) {
        char marker [PATH_MAX + 16];
        snprintf (marker, sizeof marker, "%s/%s", self->dir, DEMO_MARKER);
        bool empty = true;
        DIR *listing = opendir (self->dir);
        struct dirent *entry;
        while (listing && (entry = readdir (listing)))
            if (!streq (entry->d_name, ".") && !streq (entry->d_name, ".."))
                empty = false;
        if (listing)
            closedir (listing);
        if (!empty && access (marker, F_OK))
            return pond_cli_fail (self->cli,
                                  "%s exists and was not made by pond demo: "
                                  "remove it or give another --data",
                                  self->dir),
                 -1;
        pid_t pid = pond_supervisor_pid (self->dir);
        if (pid > 0) {
            printf ("a mesh of an earlier demo still runs in %s: stopping it\n", self->dir);
            if (pond_mesh_down (self->cli, self->dir))
                return -1;
        }
        nftw (self->dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
    }
    char marker [PATH_MAX + 16];
    snprintf (marker, sizeof marker, "%s/%s", self->dir, DEMO_MARKER);
    FILE *file = fopen (marker, "w");
    if (!file)
        return pond_cli_fail (self->cli, "cannot write in %s: %s", self->dir, strerror (errno)), -1;
    fprintf (file, "made by pond demo; pond demo wipes this directory when it starts\n");
    fclose (file);
    printf ("data directory: %s (%s)\n", self->dir,
            existed ? "fresh: wiped first" : "fresh: created");
    return 0;
}

//  =====================================================================
//  The steps

static int
s_step_up (demo_t *self)
{
    s_heading (self, "Start the mesh");
    s_say (self, "A supervisor starts pond-store (the log), pond-broker (the one write");
    s_say (self, "point) and four actors, each its own process, and restarts any that dies.");
    char *argv [] = { "pond", "up", NULL };
    if (s_run (self, RUN_SHOW | RUN_ECHO | RUN_STDERR, NULL, argv) != 0)
        return s_fail (self, "pond up failed (see above)");
    self->mesh_up = true;
    printf ("\nlocal demo mode: ipc endpoints, no keys\n");
    return 0;
}

//  One device's summary line, parsed. Returns the tree (caller deletes).
static cJSON *
s_device_summary (const char *output)
{
    const char *start = output ? strstr (output, "{\"device\"") : NULL;
    return start ? cJSON_Parse (start) : NULL;
}

static int
s_step_devices (demo_t *self)
{
    s_heading (self, "Kitchen devices publish events");
    s_say (self, "Four Silo devices, one per customer. Each writes every event to its own");
    s_say (self, "durable outbox first, then sends it; the broker ACKs it only once the");
    s_say (self, "store has it on disk. dora's device starts offline.");
    char *anna [] = { "pond-device", "--device", "silo-anna", "--customer",
                      "anna",        "--quack",  "20",        NULL };
    char *ben [] = { "pond-device", "--device", "silo-ben", "--customer",
                     "ben",         "--quack",  "30",       NULL };
    char *carla [] = { "pond-device", "--device",  "silo-carla", "--customer", "carla",   "--quack",
                       "5",           "--label",   "c1=milk",    "--label",    "c2=eggs", "--label",
                       "c3=cheddar",  "--unlabel", "c2",         NULL };
    char *dora [] = { "pond-device",  "--device", "silo-dora",
                      "--customer",   "dora",     "--start-offline",
                      DEMO_OFFLINE_S, "--quack",  "2",
                      "--click",      "2",        NULL };
    char **argvs [] = { anna, ben, carla, dora };
    const char *names [] = { "anna", "ben", "carla", "dora" };
    pond_mesh_child_t devices [4];
    for (size_t i = 0; i < 4; i++) {
        s_show_command (argvs [i], i == 0);
        char path [PATH_MAX + 32];
        snprintf (path, sizeof path, "%s/pond-device", self->bin_dir);
        if (pond_mesh_child_start (&devices [i], path, argvs [i], false)) {
            for (size_t j = 0; j < i; j++) {
                pond_mesh_children_finish (&devices [j], 1, 0);
                pond_mesh_child_free (&devices [j]);
            }
            return s_fail (self, "cannot run %s: %s", path, strerror (errno));
        }
    }
    printf ("\n");
    //  The three online devices first; dora's is still offline meanwhile
    int timeout = 30000;
    int rc = pond_mesh_children_finish (devices, 3, timeout);
    bool dora_offline = rc == 0 && kill (devices [3].pid, 0) == 0;
    bool dora_unknown = false;
    if (dora_offline) {
        bool failed = false;
        char err [512];
        cJSON *answer = s_ask (self, "quack-counter", "dora", &failed, err, sizeof err);
        dora_unknown = !answer && !failed;
        cJSON_Delete (answer);
    }
    int rc_dora = pond_mesh_children_finish (&devices [3], 1, timeout);
    int failures = 0;
    char problem [512] = "";
    for (size_t i = 0; i < 4; i++) {
        int code = pond_mesh_child_exit (&devices [i]);
        cJSON *summary = s_device_summary (devices [i].text [0]);
        double created = cJSON_GetNumberValue (cJSON_GetObjectItem (summary, "created"));
        double sent = cJSON_GetNumberValue (cJSON_GetObjectItem (summary, "sent"));
        if (code != 0 || !summary) {
            failures++;
            snprintf (problem, sizeof problem, "%s's device failed (exit code %d)%s", names [i],
                      code, failures > 1 ? ", and others before it" : "");
            fprintf (stderr, "    %s's device failed (exit code %d):\n", names [i], code);
            s_echo (devices [i].text [1], stderr);
        }
        else if (i < 3)
            s_say (self, "%-6s %2.0f events created, %2.0f sent and acknowledged", names [i],
                   created, sent);
        else {
            if (dora_offline)
                s_say (self,
                       "dora's device was offline: %.0f events queued... back online: "
                       "synced %.0f",
                       created, sent);
            else
                s_say (self,
                       "dora's device was offline: %.0f events queued... back online "
                       "(before the others were done): synced %.0f",
                       created, sent);
            if (dora_unknown)
                s_say (self, "       (meanwhile the mesh knew nothing of dora: "
                             "pond query quacks dora -> 404)");
        }
        if (i == 2 && summary) {
            //  carla's own containers: the device tracks them itself
            char text [256] = "";
            cJSON *container;
            cJSON_ArrayForEach (container, cJSON_GetObjectItem (summary, "containers")) {
                const char *state = cJSON_GetStringValue (cJSON_GetObjectItem (container, "state"));
                const char *label = cJSON_GetStringValue (cJSON_GetObjectItem (container, "label"));
                size_t used = strlen (text);
                snprintf (text + used, sizeof text - used, "%s%s %s", used ? ", " : "",
                          container->string,
                          state && streq (state, "UNLABELED") ? "UNLABELED"
                          : label                             ? label
                                                              : "?");
            }
            s_say (self, "       carla's device keeps its own containers: %s", text);
        }
        cJSON_Delete (summary);
        pond_mesh_child_free (&devices [i]);
    }
    if (rc || rc_dora)
        return s_fail (self, "the devices did not finish within %d s", timeout / 1000);
    if (failures)
        return s_fail (self, "%s", problem);
    return 0;
}

static int
s_step_counts (demo_t *self)
{
    s_heading (self, "The actors: quack counts and badges (rules v1)");
    s_say (self, "quack-counter counts QUACKED per customer; badge-granter grants badges");
    s_say (self, "as events (BADGE_GRANTED) under rules v1: Junior at 10, Master at 20.");
    uint64_t head;
    if (s_wait_caught_up (self, &head))
        return -1;
    char *argv [] = { "pond", "query", "quacks", "anna", NULL };
    if (s_run (self, RUN_SHOW | RUN_ECHO, NULL, argv) != 0)
        return s_fail (self, "pond query quacks anna failed");
    char *badges [] = { "pond", "query", "badges", "ben", NULL };
    if (s_run (self, RUN_SHOW | RUN_ECHO, NULL, badges) != 0)
        return s_fail (self, "pond query badges ben failed");
    return s_show_badges (self, false);
}

//  Count the events of a replay's JSON lines by name; check the one removal
static int
s_check_changes (demo_t *self, const char *lines)
{
    int removed = 0, granted = 0;
    bool anna_master = false;
    const char *line = lines;
    while (line && *line) {
        const char *end = strchr (line, '\n');
        char *copy = strndup (line, end ? (size_t) (end - line) : strlen (line));
        cJSON *event = copy ? cJSON_Parse (copy) : NULL;
        const char *name = cJSON_GetStringValue (cJSON_GetObjectItem (event, "name"));
        const char *entity = cJSON_GetStringValue (cJSON_GetObjectItem (event, "entity"));
        const char *badge = cJSON_GetStringValue (
            cJSON_GetObjectItem (cJSON_GetObjectItem (event, "data"), "badge"));
        if (name && streq (name, "BADGE_REMOVED")) {
            removed++;
            anna_master = entity && badge && streq (entity, "anna") && streq (badge, "Master");
        }
        else if (name && streq (name, "BADGE_GRANTED"))
            granted++;
        cJSON_Delete (event);
        free (copy);
        line = end ? end + 1 : NULL;
    }
    if (removed != 1 || !anna_master || granted != 0)
        return s_fail (self,
                       "the recompute should emit exactly one BADGE_REMOVED (Master, "
                       "anna) and no BADGE_GRANTED; it emitted %d BADGE_REMOVED and %d "
                       "BADGE_GRANTED",
                       removed, granted),
             -1;
    s_say (self, "exactly one change: anna loses Master (20 quacks < 25); ben keeps");
    s_say (self, "Junior and Master (30 quacks: >= 25, < 45); nobody reaches Grand.");
    return 0;
}

static int
s_step_recompute (demo_t *self)
{
    s_heading (self, "New badge rules for the whole history: v2");
    s_say (self, "v2: Junior at 15, Master at 25, Grand at 45. badge-granter replays every");
    s_say (self, "QUACKED from the log and emits only the differences, as events.");
    char from [40];
    pond_time_format (pond_time_now (), from, sizeof from);
    char *argv [] = { "pond", "recompute", "badges", "--rules", "v2", NULL };
    char *result = NULL;
    if (s_run (self, RUN_SHOW | RUN_ECHO | RUN_STDERR, &result, argv) != 0) {
        free (result);
        return s_fail (self, "pond recompute badges --rules v2 failed");
    }
    free (result);
    uint64_t head;
    if (s_wait_caught_up (self, &head))
        return -1;
    s_say (self, "the events it produced, replayed from the log by name since it started:");
    char *replay [] = { "pond",   "replay", "--names", "BADGE_REMOVED,BADGE_GRANTED",
                        "--from", from,     NULL };
    char *lines = NULL;
    int code = s_run (self, RUN_SHOW | RUN_ECHO, &lines, replay);
    int rc = code == 0 ? s_check_changes (self, lines) : s_fail (self, "pond replay failed");
    free (lines);
    if (rc)
        return -1;
    if (s_show_badges (self, true))
        return -1;
    //  Events are forever, commands may be repeated: the same rules again
    //  change nothing
    char *again = NULL;
    printf ("\n");
    s_say (self, "the same command again changes nothing:");
    if (s_run (self, RUN_SHOW, &again, argv) != 0) {
        free (again);
        return s_fail (self, "the second pond recompute failed");
    }
    cJSON *tree = cJSON_Parse (again ? again : "");
    double granted = cJSON_GetNumberValue (cJSON_GetObjectItem (tree, "granted_count"));
    double removed = cJSON_GetNumberValue (cJSON_GetObjectItem (tree, "removed_count"));
    cJSON_Delete (tree);
    free (again);
    s_say (self, " granted %.0f, removed %.0f", granted, removed);
    if (granted != 0 || removed != 0)
        return s_fail (self, "recomputing v2 a second time must change nothing");
    return 0;
}

static int
s_step_alexa (demo_t *self)
{
    s_heading (self, "Ask Alexa about carla's kitchen");
    s_say (self, "alexa-view keeps each customer's food: LABEL_ADDED adds an item,");
    s_say (self, "LABEL_REMOVED removes it (carla took the eggs label off).");
    const char *questions [] = { "what do I have?", "do I have milk?", "do I have eggs?" };
    for (size_t i = 0; i < 3; i++) {
        char *argv [] = {
            "pond", "query", "alexa", "carla", (char *) questions [i], "--text", NULL
        };
        char *answer = NULL;
        int code = s_run (self, RUN_SHOW | RUN_ECHO, &answer, argv);
        bool right = code == 0 && answer;
        if (right && i == 0)
            right = strstr (answer, "milk") && strstr (answer, "cheddar")
                 && !strstr (answer, "eggs");
        free (answer);
        if (!right)
            return s_fail (self, "alexa-view's answer to \"%s\" is wrong (see above)",
                           questions [i]);
    }
    return 0;
}

static int
s_step_mobile (demo_t *self)
{
    s_heading (self, "carla's mobile document");
    s_say (self, "mobile-view keeps one denormalized document per customer, ready for an");
    s_say (self, "app screen: inventory, container states, quack count, badges.");
    char *argv [] = { "pond", "query", "mobile", "carla", NULL };
    char *document = NULL;
    int code = s_run (self, RUN_SHOW | RUN_ECHO, &document, argv);
    cJSON *tree = cJSON_Parse (document ? document : "");
    double quacks = cJSON_GetNumberValue (cJSON_GetObjectItem (tree, "quacks"));
    cJSON_Delete (tree);
    free (document);
    if (code != 0 || quacks != 5)
        return s_fail (self, "carla's mobile document is missing or wrong (see above)");
    return 0;
}

static int
s_step_replay (demo_t *self)
{
    s_heading (self, "Replay a time window by name");
    s_say (self, "The one query the log exists for: events by name inside a time window,");
    s_say (self, "ordered by event time. QUACKED of the last minute, anna's shown:");
    char from [40];
    pond_time_format (pond_time_now () - 60 * 1000000ULL, from, sizeof from);
    char *argv [] = { "pond", "replay", "--names", "QUACKED", "--from", from, NULL };
    char *lines = NULL;
    if (s_run (self, RUN_SHOW, &lines, argv) != 0) {
        free (lines);
        return s_fail (self, "pond replay failed");
    }
    int all = 0, anna = 0;
    const char *line = lines;
    while (line && *line) {
        const char *end = strchr (line, '\n');
        size_t length = end ? (size_t) (end - line) : strlen (line);
        char *copy = strndup (line, length);
        cJSON *event = copy ? cJSON_Parse (copy) : NULL;
        const char *entity = cJSON_GetStringValue (cJSON_GetObjectItem (event, "entity"));
        all++;
        if (entity && streq (entity, "anna") && ++anna <= 3)
            printf ("    %s\n", copy);
        cJSON_Delete (event);
        free (copy);
        line = end ? end + 1 : NULL;
    }
    free (lines);
    printf ("    ...\n");
    s_say (self, "anna: %d QUACKED in the window (of %d QUACKED from every customer)", anna, all);
    if (anna != 20)
        return s_fail (self, "anna quacked 20 times in the last minute, the replay found %d", anna);
    return 0;
}

static int
s_step_verify (demo_t *self)
{
    s_heading (self, "Verify every view against a rebuild from the log");
    s_say (self, "Views are caches: each is rebuilt from the log into a scratch copy and");
    s_say (self, "compared with the live one.");
    char *argv [] = { "pond", "verify", NULL };
    if (s_run (self, RUN_SHOW | RUN_ECHO, NULL, argv) != 0)
        return s_fail (self, "a view differs from its rebuild (see above)");
    return 0;
}

static int
s_step_down (demo_t *self)
{
    s_heading (self, "Stop the mesh");
    char *argv [] = { "pond", "down", NULL };
    if (s_run (self, RUN_SHOW | RUN_ECHO | RUN_STDERR, NULL, argv) != 0)
        return s_fail (self, "pond down failed");
    self->mesh_up = false;
    if (self->keep) {
        s_say (self, "data kept in %s", self->dir);
        s_say (self, "(the log, the views, the outboxes and every log file: pond up --data");
        s_say (self, "%s starts it again)", self->dir);
    }
    else {
        nftw (self->dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
        if (rmdir (self->dir))
            s_say (self, "could not remove %s: %s", self->dir, strerror (errno));
        else
            s_say (self, "data removed from %s (pond demo --keep keeps it)", self->dir);
    }
    return 0;
}

//  =====================================================================
//  pond demo [--data DIR] [--keep]

void
pond_cmd_demo_help (FILE *out)
{
    fprintf (out,
             "Usage: pond demo [--data DIR] [--keep]\n"
             "\n"
             "Tell the whole story of pond on a real mesh, in under a minute: start\n"
             "the mesh (pond up), let four kitchen devices publish quacks and labels\n"
             "(one of them offline at first), show quack counts and badges, apply\n"
             "new badge rules to the whole history (pond recompute), ask Alexa, show\n"
             "a mobile document, replay a time window by name, verify every view\n"
             "against a rebuild from the log, and stop the mesh. Each step shows the\n"
             "commands it runs and checks their answers.\n"
             "\n"
             "  --data DIR        where the mesh keeps its data (default %s);\n"
             "                    wiped first: only a directory pond demo made, or an\n"
             "                    empty one, is used\n"
             "  --keep            keep the data at the end (default: removed)\n"
             "  --help            this help\n"
             "Exit status: 0 the story ran as told, 1 a step failed (the mesh is\n"
             "stopped and the data kept for a look), 2 usage error.\n",
             DEMO_DIR);
}

int
pond_cmd_demo (int argc, char *argv [])
{
    pond_cli_t cli;
    pond_cli_init (&cli, "demo", pond_cmd_demo_help);
    static const struct option options [] = { POND_CLI_COMMON_OPTIONS,
                                              POND_CLI_DATA_OPTION,
                                              { "keep", no_argument, NULL, 'k' },
                                              { NULL, 0, NULL, 0 } };
    demo_t self = { .cli = &cli, .tty = isatty (1) };
    int opt;
    while ((opt = pond_cli_getopt (&cli, argc, argv, options)) != -1)
        if (opt == 'k')
            self.keep = true;
    if (cli.done)
        return cli.exit_code;
    //  Not $POND_DATA: the demo wipes its directory, so only --data says where
    const char *given = cli.data_dir ? cli.data_dir : DEMO_DIR;
    if (pond_mesh_bin_dir (self.bin_dir, sizeof self.bin_dir))
        return pond_cli_fail (&cli, "cannot find the directory of the pond binary");
    zsys_init ();    //  Ctrl-C sets zsys_interrupted from here on
    self.started = zclock_mono ();
    printf ("pond demo: an event-sourced actor mesh, from devices to views, end to end\n");
    if (s_fresh_dir (&self, given))
        return POND_EXIT_FAILURE;
    //  Every command below finds the mesh through $POND_DATA, as a user would
    setenv ("POND_DATA", self.dir, 1);
    printf ("every command below runs with POND_DATA=%s\n", self.dir);

    int (*steps []) (demo_t *) = { s_step_up,        s_step_devices, s_step_counts,
                                   s_step_recompute, s_step_alexa,   s_step_mobile,
                                   s_step_replay,    s_step_verify,  s_step_down };
    for (size_t i = 0; i < sizeof steps / sizeof steps [0]; i++) {
        if (steps [i](&self))
            return POND_EXIT_FAILURE;
        if (zsys_interrupted)
            return s_fail (&self, "interrupted");
    }
    printf ("\npond demo: done in %.1f s\n", (double) (zclock_mono () - self.started) / 1000);
    return POND_EXIT_OK;
}
