//! The control plane's keys and certificates, generated fresh for every instance (ECDSA P-256
//! with `rcgen` on `ring`): one CA that signs the API server's serving certificate, every client
//! certificate (X.509 client-certificate authentication: CN = user name, O = groups, as
//! Kubernetes reads them) and node serving certificates; and the service-account key pair the
//! API server signs tokens with and the controller-manager mints them with.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::ControlPlaneError;

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where [`Pki::write`] put the files the control plane's processes read.
#[derive(Debug, Clone)]
pub struct PkiFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub kubelet_client_cert: PathBuf,
    pub kubelet_client_key: PathBuf,
    pub service_account_public: PathBuf,
    pub service_account_private: PathBuf,
}

/// The CA (kept to mint more certificates later) and the keys made at start.
pub struct Pki {
    ca: Issuer<'static, KeyPair>,
    ca_cert_pem: String,
    ca_cert_der: Vec<u8>,
    ca_key_pem: String,
    serving: CertPair,
    kubelet_client: CertPair,
    service_account: KeyPair,
}

/// The names the API server's serving certificate is valid for: loopback, and what in-cluster
/// clients use for the `kubernetes` Service (`service_ip` is its cluster IP).
fn serving_names(service_ip: IpAddr) -> Vec<SanType> {
    let dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    let mut names: Vec<SanType> = dns.iter().filter_map(|name| (*name).try_into().ok().map(SanType::DnsName)).collect();
    names.push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    names.push(SanType::IpAddress(service_ip));
    names
}

impl Pki {
    /// A new CA, API server serving certificate, the API server's client certificate for
    /// kubelets, and a service-account key pair.
    pub fn generate(service_ip: IpAddr) -> Result<Self, ControlPlaneError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name("alustan-testenv-ca", &[]);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let (ca_cert_pem, ca_cert_der) = (ca_cert.pem(), ca_cert.der().to_vec());
        let ca_key_pem = ca_key.serialize_pem();
        let ca = Issuer::new(ca_params, ca_key);

        let serving =
            issue(&ca, "kube-apiserver", &[], serving_names(service_ip), ExtendedKeyUsagePurpose::ServerAuth)?;
        // kubeadm's identity for the API server's calls to kubelets (logs, exec).
        let kubelet_client = issue(
            &ca,
            "kube-apiserver-kubelet-client",
            &["kubeadm:cluster-admins"],
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let service_account = KeyPair::generate()?;
        Ok(Self { ca, ca_cert_pem, ca_cert_der, ca_key_pem, serving, kubelet_client, service_account })
    }

    /// The CA certificate (PEM): what clients trust and what the API server checks client
    /// certificates against.
    pub fn ca_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The CA certificate, DER-encoded (what a kube client's `root_cert` holds).
    pub fn ca_der(&self) -> &[u8] {
        &self.ca_cert_der
    }

    /// A client certificate for user `user` in `groups`.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<CertPair, ControlPlaneError> {
        issue(&self.ca, user, groups, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A serving certificate for `common_name`, valid for the given IPs and DNS names.
    pub fn serving_cert(&self, common_name: &str, ips: &[IpAddr], dns: &[&str]) -> Result<CertPair, ControlPlaneError> {
        let mut names: Vec<SanType> = ips.iter().copied().map(SanType::IpAddress).collect();
        for name in dns {
            names.push(SanType::DnsName((*name).try_into()?));
        }
        issue(&self.ca, common_name, &[], names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// Writes the files the processes read into `dir`.
    pub fn write(&self, dir: &Path) -> Result<PkiFiles, ControlPlaneError> {
        std::fs::create_dir_all(dir).map_err(|source| ControlPlaneError::io(dir, source))?;
        let files = PkiFiles {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            kubelet_client_cert: dir.join("apiserver-kubelet-client.crt"),
            kubelet_client_key: dir.join("apiserver-kubelet-client.key"),
            service_account_public: dir.join("sa.pub"),
            service_account_private: dir.join("sa.key"),
        };
        for (path, contents) in [
            (&files.ca_cert, self.ca_cert_pem.as_str()),
            (&files.ca_key, self.ca_key_pem.as_str()),
            (&files.serving_cert, self.serving.cert_pem.as_str()),
            (&files.serving_key, self.serving.key_pem.as_str()),
            (&files.kubelet_client_cert, self.kubelet_client.cert_pem.as_str()),
            (&files.kubelet_client_key, self.kubelet_client.key_pem.as_str()),
            (&files.service_account_public, &self.service_account.public_key_pem()),
            (&files.service_account_private, &self.service_account.serialize_pem()),
        ] {
            std::fs::write(path, contents).map_err(|source| ControlPlaneError::io(path, source))?;
        }
        Ok(files)
    }
}

fn name(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for organization in organizations {
        name.push(DnType::OrganizationName, *organization);
    }
    name.push(DnType::CommonName, common_name);
    name
}

fn issue(
    ca: &Issuer<'static, KeyPair>,
    common_name: &str,
    organizations: &[&str],
    names: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
) -> Result<CertPair, ControlPlaneError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name, organizations);
    params.subject_alt_names = names;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, ca)?;
    Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}
