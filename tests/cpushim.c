/* LD_PRELOAD shim: the process sees FASTINIT_SHIM_CPUS CPUs (0 .. N-1), whatever it runs on.
 *
 * It answers sched_getaffinity and sysconf(_SC_NPROCESSORS_*) with N CPUs, and takes any
 * sched_setaffinity mask within them: the fake mask is remembered per thread (and inherited
 * by new threads and forked children, as the kernel does), the thread is really pinned to
 * the real CPUs the fake ones fold onto (fake CPU c -> the (c mod R)-th of the R CPUs the
 * process had at start). The suite runs under it to prove it holds on 1 to 64 CPUs; see
 * tests/cpushim.py. Unset or 0: every call goes straight to libc. Our own code (MIT). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOTS 8192

typedef int (*getaff_fn)(pid_t, size_t, cpu_set_t *);
typedef int (*setaff_fn)(pid_t, size_t, const cpu_set_t *);
typedef long (*sysconf_fn)(int);
typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static int fake_n = -1;
static int real_cpus[CPU_SETSIZE];
static int real_count;
static getaff_fn real_getaff;
static setaff_fn real_setaff;
static sysconf_fn real_sysconf;
static create_fn real_create;

/* The fake mask of each thread that set one (or inherited one), by thread id: another
 * thread may ask for it (Python reads the main thread's mask from its helpers). */
static struct { pid_t tid; cpu_set_t mask; } table[SLOTS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int own_set;
static __thread cpu_set_t own_mask;

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

static void put(pid_t who, const cpu_set_t *mask)
{
    pthread_mutex_lock(&table_lock);
    unsigned i = (unsigned)who % SLOTS;
    /* A reused thread id takes over its slot: the dead thread's mask is never read again. */
    for (unsigned n = 0; n < SLOTS && table[i].tid && table[i].tid != who; n++)
        i = (i + 1) % SLOTS;
    table[i].tid = who;
    table[i].mask = *mask;
    pthread_mutex_unlock(&table_lock);
}

static int get(pid_t who, cpu_set_t *mask)
{
    int found = 0;
    pthread_mutex_lock(&table_lock);
    unsigned i = (unsigned)who % SLOTS;
    for (unsigned n = 0; n < SLOTS && table[i].tid; n++, i = (i + 1) % SLOTS)
        if (table[i].tid == who) {
            *mask = table[i].mask;
            found = 1;
            break;
        }
    pthread_mutex_unlock(&table_lock);
    return found;
}

static void remember(pid_t who, const cpu_set_t *mask)
{
    if (who == tid()) {
        own_mask = *mask;
        own_set = 1;
    }
    put(who, mask);
}

static void after_fork_child(void)
{
    /* The child's only thread is the one that forked; its id is the child's pid. */
    if (own_set)
        put(getpid(), &own_mask);
}

/* Run by the constructor, or earlier by the first wrapped call: another library's
 * constructor (libselinux's, in coreutils' mv) may call sysconf before ours has run, and a
 * NULL real_sysconf there was a segfault. Early start-up is single-threaded. */
static void setup(void)
{
    if (fake_n >= 0)
        return;
    const char *text = getenv("FASTINIT_SHIM_CPUS");
    real_getaff = (getaff_fn)dlsym(RTLD_NEXT, "sched_getaffinity");
    real_setaff = (setaff_fn)dlsym(RTLD_NEXT, "sched_setaffinity");
    real_sysconf = (sysconf_fn)dlsym(RTLD_NEXT, "sysconf");
    real_create = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    fake_n = text ? atoi(text) : 0;
    if (fake_n < 0 || fake_n > CPU_SETSIZE)
        fake_n = 0;
    cpu_set_t start;
    CPU_ZERO(&start);
    if (real_getaff(0, sizeof start, &start) == 0)
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &start))
                real_cpus[real_count++] = c;
    pthread_atfork(NULL, NULL, after_fork_child);
}

__attribute__((constructor)) static void setup_at_load(void) { setup(); }

long sysconf(int name)
{
    setup();
    if (fake_n > 0 && (name == _SC_NPROCESSORS_ONLN || name == _SC_NPROCESSORS_CONF))
        return fake_n;
    return real_sysconf(name);
}

int sched_getaffinity(pid_t pid, size_t size, cpu_set_t *mask)
{
    setup();
    if (fake_n <= 0)
        return real_getaff(pid, size, mask);
    if (size * 8 < (size_t)fake_n) {
        errno = EINVAL;
        return -1;
    }
    /* The real call first: it fails as the kernel would for a thread that does not exist. */
    int rc = real_getaff(pid, size, mask);
    if (rc != 0)
        return rc;
    pid_t who = pid ? pid : tid();
    cpu_set_t fake;
    if (who == tid() && own_set)
        fake = own_mask;
    else if (!get(who, &fake)) {
        CPU_ZERO(&fake);
        for (int c = 0; c < fake_n; c++)
            CPU_SET(c, &fake);
    }
    memset(mask, 0, size);
    for (int c = 0; c < fake_n; c++)
        if (CPU_ISSET(c, &fake))
            CPU_SET_S(c, size, mask);
    return 0;
}

int sched_setaffinity(pid_t pid, size_t size, const cpu_set_t *mask)
{
    setup();
    if (fake_n <= 0 || real_count == 0)
        return real_setaff(pid, size, mask);
    cpu_set_t fake, real;
    CPU_ZERO(&fake);
    CPU_ZERO(&real);
    for (int c = 0; c < fake_n && (size_t)c < size * 8; c++)
        if (CPU_ISSET_S(c, size, mask)) {
            CPU_SET(c, &fake);
            CPU_SET(real_cpus[c % real_count], &real);
        }
    if (CPU_COUNT(&fake) == 0) {  /* the kernel refuses a mask of no usable CPU */
        errno = EINVAL;
        return -1;
    }
    int rc = real_setaff(pid, sizeof real, &real);
    if (rc == 0)
        remember(pid ? pid : tid(), &fake);
    return rc;
}

/* A new thread starts with its creator's mask, as in the kernel. */
struct start { void *(*fn)(void *); void *arg; int set; cpu_set_t mask; };

static void *trampoline(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    if (!s.set) {  /* the default mask, over any left by a dead thread of the same id */
        CPU_ZERO(&s.mask);
        for (int c = 0; c < fake_n; c++)
            CPU_SET(c, &s.mask);
    }
    remember(tid(), &s.mask);
    return s.fn(s.arg);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    setup();
    if (fake_n <= 0)
        return real_create(thread, attr, fn, arg);
    struct start *s = malloc(sizeof *s);
    if (!s)
        return EAGAIN;
    s->fn = fn;
    s->arg = arg;
    s->set = own_set;
    s->mask = own_mask;
    int rc = real_create(thread, attr, trampoline, s);
    if (rc != 0)
        free(s);
    return rc;
}
