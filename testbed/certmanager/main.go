// Command cert-manager-controller is the testbed's cert-manager controller: cert-manager's own
// control loops (Certificates, CertificateRequests, Issuers, ClusterIssuers, ACME Orders and
// Challenges) from the module github.com/cert-manager/cert-manager, run against an API server
// from a kubeconfig.
//
// cert-manager's binary lives in a separate module (github.com/cert-manager/cert-manager/cmd/
// controller) that the module proxy refuses, and its venafi issuer needs
// github.com/Venafi/vcert/v5, whose source the proxy refuses too; so this small main starts the
// controllers of the main module itself. Issuers: selfSigned, ca, acme (vault and venafi are left
// out: the testbed needs neither and they cost build time). Leader election is off (one process),
// the webhook and cainjector are not part of it, and every listener is on loopback.
// See testbed/certmanager/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"
	logsapi "k8s.io/component-base/logs/api/v1"

	"github.com/cert-manager/cert-manager/pkg/controller"
	shimgateways "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/gateways"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/healthz"
	dnsutil "github.com/cert-manager/cert-manager/pkg/issuer/acme/dns/util"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util"

	// Each package registers its control loop (controller.Register) or issuer in init().
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	_ "github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificate-shim/ingresses"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/metrics"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// options are the command line; the values cert-manager's own flags would give unless said.
type options struct {
	kubeconfig               string
	apiServerHost            string
	clusterResourceNamespace string
	namespace                string
	controllers              []string
	workers                  int
	metricsAddress           string
	healthzAddress           string
	enableGatewayAPI         bool
	http01SolverImage        string
	logging                  *logsapi.LoggingConfiguration
}

func parseFlags(args []string) (*options, error) {
	o := &options{logging: logsapi.NewLoggingConfiguration()}
	fs := pflag.NewFlagSet("cert-manager-controller", pflag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig of the API server (required)")
	fs.StringVar(&o.apiServerHost, "master", "", "API server address, overriding the kubeconfig's")
	// cert-manager defaults to kube-system; the collection runs it in its own namespace.
	fs.StringVar(&o.clusterResourceNamespace, "cluster-resource-namespace", "cert-manager",
		"where the Secrets that ClusterIssuers refer to live (a CA's key pair, an ACME account key)")
	fs.StringVar(&o.namespace, "namespace", "", "watch only this namespace (ClusterIssuers are then off)")
	fs.StringSliceVar(&o.controllers, "controllers", []string{"*"},
		"controllers to run: '*' = all of "+strings.Join(defaultControllers(), ",")+"; '-name' leaves one out")
	fs.IntVar(&o.workers, "concurrent-workers", 5, "workers per controller")
	fs.StringVar(&o.metricsAddress, "metrics-listen-address", "127.0.0.1:9402", "Prometheus metrics (loopback only)")
	fs.StringVar(&o.healthzAddress, "healthz-listen-address", "127.0.0.1:9403", "/livez (loopback only)")
	fs.BoolVar(&o.enableGatewayAPI, "enable-gateway-api", false,
		"watch Gateway API objects: the gateway-shim controller and HTTP-01 through HTTPRoutes (needs the CRDs)")
	fs.StringVar(&o.http01SolverImage, "acme-http01-solver-image",
		"quay.io/jetstack/cert-manager-acmesolver:"+util.AppVersion, "image of the ACME HTTP-01 solver Pods")
	logf.AddFlags(o.logging, fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.kubeconfig == "" && o.apiServerHost == "" {
		return nil, errors.New("--kubeconfig is required (this controller runs outside a cluster)")
	}
	for flag, address := range map[string]string{
		"--metrics-listen-address": o.metricsAddress, "--healthz-listen-address": o.healthzAddress,
	} {
		if err := requireLoopback(address); err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
	}
	return o, logf.ValidateAndApply(o.logging)
}

func requireLoopback(address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: the testbed listens on 127.0.0.1 only", address)
	}
	return nil
}

// defaultControllers: every registered control loop except the gateway shim, which needs the
// Gateway API CRDs and so only runs with --enable-gateway-api (as in cert-manager).
func defaultControllers() []string {
	var names []string
	for name := range controller.Known() {
		if name != shimgateways.ControllerName {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func enabledControllers(o *options) (sets.Set[string], error) {
	enabled, disabled := sets.New[string](), sets.New[string]()
	for _, name := range o.controllers {
		switch {
		case name == "*":
			enabled.Insert(defaultControllers()...)
		case strings.HasPrefix(name, "-"):
			disabled.Insert(strings.TrimPrefix(name, "-"))
		default:
			enabled.Insert(name)
		}
	}
	if enabled.Len() == 0 {
		enabled.Insert(defaultControllers()...)
	}
	if o.enableGatewayAPI {
		enabled.Insert(shimgateways.ControllerName)
	}
	if o.namespace != "" {
		disabled.Insert(clusterissuers.ControllerName)
	}
	for name := range enabled.Union(disabled) {
		if _, ok := controller.Known()[name]; !ok {
			return nil, fmt.Errorf("unknown controller %q (known: %s)", name, strings.Join(sets.List(sets.KeySet(controller.Known())), ", "))
		}
	}
	return enabled.Difference(disabled), nil
}

func contextOptions(o *options) controller.ContextOptions {
	return controller.ContextOptions{
		Kubeconfig:         o.kubeconfig,
		APIServerHost:      o.apiServerHost,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		Namespace:          o.namespace,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: o.clusterResourceNamespace,
			// No cloud metadata service to borrow credentials from, here or for the tests.
			ClusterIssuerAmbientCredentials: false,
			IssuerAmbientCredentials:        false,
		},
		ACMEOptions: controller.ACMEOptions{
			HTTP01SolverImage:                 o.http01SolverImage,
			HTTP01SolverResourceRequestCPU:    resource.MustParse("10m"),
			HTTP01SolverResourceRequestMemory: resource.MustParse("64Mi"),
			HTTP01SolverResourceLimitsCPU:     resource.MustParse("100m"),
			HTTP01SolverResourceLimitsMemory:  resource.MustParse("64Mi"),
			ACMEHTTP01SolverRunAsNonRoot:      true,
			DNS01Nameservers:                  dnsutil.RecursiveNameservers,
			DNS01CheckRetryPeriod:             10 * time.Second,
			DNS01CheckAuthoritative:           true,
		},
		SchedulerOptions: controller.SchedulerOptions{MaxConcurrentChallenges: 60},
		IngressShimOptions: controller.IngressShimOptions{
			DefaultIssuerKind:                 "Issuer",
			DefaultIssuerGroup:                "cert-manager.io",
			DefaultAutoCertificateAnnotations: []string{"kubernetes.io/tls-acme"},
			GatewayAPIExtraProtocols:          sets.New[string](),
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
		ConfigOptions: controller.ConfigOptions{EnableGatewayAPI: o.enableGatewayAPI},
	}
}

// serve runs SERVER on LISTENER until ctx ends.
func serve(ctx context.Context, g *errgroup.Group, server *http.Server, listener net.Listener) {
	g.Go(func() error {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return server.Shutdown(shutdown) //nolint:contextcheck // ctx is already done
	})
	g.Go(func() error {
		if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
}

func run(ctx context.Context, o *options) error {
	log := logf.FromContext(ctx)
	enabled, err := enabledControllers(o)
	if err != nil {
		return err
	}
	factory, err := controller.NewContextFactory(ctx, contextOptions(o))
	if err != nil {
		return err
	}
	base, err := factory.Build()
	if err != nil {
		return err
	}
	log.Info("starting cert-manager controllers", "version", util.AppVersion, "controllers", sets.List(enabled))

	var lc net.ListenConfig
	metricsListener, err := lc.Listen(ctx, "tcp", o.metricsAddress)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	healthzListener, err := lc.Listen(ctx, "tcp", o.healthzAddress)
	if err != nil {
		return fmt.Errorf("healthz listener: %w", err)
	}
	log.Info("listening", "metrics", metricsListener.Addr().String(), "healthz", healthzListener.Addr().String())

	g, ctx := errgroup.WithContext(ctx)
	base.Metrics.SetupACMECollector(base.SharedInformerFactory.Acme().V1().Challenges().Lister())
	base.Metrics.SetupCertificateCollector(base.SharedInformerFactory.Certmanager().V1().Certificates().Lister())
	base.Metrics.SetupIssuerCollector(base.SharedInformerFactory.Certmanager().V1().Issuers().Lister())
	if enabled.Has(clusterissuers.ControllerName) {
		base.Metrics.SetupClusterIssuerCollector(base.SharedInformerFactory.Certmanager().V1().ClusterIssuers().Lister())
	}
	serve(ctx, g, base.Metrics.NewServer(metricsListener), metricsListener)
	g.Go(func() error { return healthz.NewServer(20*time.Second).Start(ctx, healthzListener) })

	// Constructing a controller registers its informers with the shared factories; they are
	// started once every controller exists.
	for _, name := range sets.List(enabled) {
		loop, err := controller.Known()[name](factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", name, err)
		}
		g.Go(func() error { return loop.Run(o.workers, ctx) })
	}
	base.SharedInformerFactory.Start(ctx.Done())
	base.KubeSharedInformerFactory.Start(ctx.Done())
	base.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	if o.enableGatewayAPI {
		base.GWShared.Start(ctx.Done())
	}
	err = g.Wait()
	log.Info("controllers stopped")
	return err
}

func main() {
	logf.InitLogs()
	defer logf.FlushLogs()
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-controller:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	if err := run(ctx, o); err != nil && !errors.Is(err, context.Canceled) {
		logf.Log.Error(err, "cert-manager controller failed")
		logf.FlushLogs()
		os.Exit(1)
	}
}
